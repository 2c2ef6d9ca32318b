package main

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

// parserFlags selects the parsers serve and parse use.
type parserFlags struct {
	daemons string // comma-separated built-in names, or "all"
	rules   string // YAML rules file, optional
	// dovecotFormat is the site's login_log_format_elements; "" takes the
	// rules file's dovecot_log_format, else Dovecot's default.
	dovecotFormat string
}

// buildParsers returns the dispatcher: custom rules first (an operator's
// rule wins over a built-in for the same line), then the selected built-ins.
func buildParsers(f parserFlags) (*parsers.Set, error) {
	var names []string
	for _, n := range strings.Split(f.daemons, ",") {
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
	dovecotFormat, formatFrom := f.dovecotFormat, "-dovecot-log-format"
	if f.rules != "" {
		data, err := os.ReadFile(f.rules)
		if err != nil {
			return nil, fmt.Errorf("-rules: %w", err)
		}
		conf, err := parsers.ParseRulesConfig(data, f.rules)
		if err != nil {
			return nil, fmt.Errorf("-rules: %w", err)
		}
		if conf.DovecotLogFormat != "" {
			if dovecotFormat != "" && dovecotFormat != conf.DovecotLogFormat {
				return nil, fmt.Errorf("-dovecot-log-format %q and dovecot_log_format %q in %s differ: set it in one place", dovecotFormat, conf.DovecotLogFormat, f.rules)
			}
			dovecotFormat, formatFrom = conf.DovecotLogFormat, f.rules+": dovecot_log_format"
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

func toParserMessage(host, program, pid, text string) parsers.Message {
	return parsers.Message{Host: host, Program: program, PID: pid, Text: text}
}
