package daemon

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/relaygate/relaygate/parsers"
)

// Two-line daemons log the address and the success on separate lines of one
// process; the correlator keeps at most this many pending address lines, each
// for at most this long, so a flood of "Session from" lines cannot grow
// memory without limit.
const (
	correlatorEntries = 10000
	correlatorMaxAge  = 2 * time.Minute
)

// NewCorrelator returns the two-line correlator the daemon and
// `relaygate parse` use, bounded as above.
func NewCorrelator() *parsers.Correlator {
	return parsers.NewCorrelator(correlatorEntries, correlatorMaxAge)
}

// BuildParsers returns the dispatcher: custom rules first (an operator's
// rule wins over a built-in for the same line), then the selected built-ins.
// Its errors name the flag or file to fix.
func BuildParsers(f ParserConfig) (*parsers.Set, error) {
	var names []string
	for _, n := range strings.Split(f.Daemons, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	var list []parsers.Parser
	if !(len(names) == 1 && names[0] == "none") {
		builtin, err := parsers.SelectBuiltin(names)
		if err != nil {
			return nil, fmt.Errorf("-daemons: %w", err)
		}
		list = builtin
	}
	dovecotFormat, formatFrom := f.DovecotFormat, "-dovecot-log-format"
	if f.Rules != "" {
		data, err := os.ReadFile(f.Rules)
		if err != nil {
			return nil, fmt.Errorf("-rules: %w", err)
		}
		conf, err := parsers.ParseRulesConfig(data, f.Rules)
		if err != nil {
			return nil, fmt.Errorf("-rules: %w", err)
		}
		if conf.DovecotLogFormat != "" {
			if dovecotFormat != "" && dovecotFormat != conf.DovecotLogFormat {
				return nil, fmt.Errorf("-dovecot-log-format %q and dovecot_log_format %q in %s differ: set it in one place", dovecotFormat, conf.DovecotLogFormat, f.Rules)
			}
			dovecotFormat, formatFrom = conf.DovecotLogFormat, f.Rules+": dovecot_log_format"
		}
		custom := make([]parsers.Parser, len(conf.Rules))
		for i, r := range conf.Rules {
			custom[i] = r
		}
		list = append(custom, list...)
	}
	if dovecotFormat != "" {
		dv, err := parsers.NewDovecot(dovecotFormat)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", formatFrom, err)
		}
		for i, p := range list {
			if _, ok := p.(parsers.Dovecot); ok {
				list[i] = dv
			}
		}
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("-daemons none and no -rules: nothing could ever grant")
	}
	return parsers.NewSet(list...), nil
}
