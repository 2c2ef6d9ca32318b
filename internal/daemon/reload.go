package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"

	"github.com/relaygate/relaygate/internal/origin"

	"github.com/relaygate/relaygate/internal/postfix"
	"github.com/relaygate/relaygate/parsers"
)

// reloadable is the part of the configuration Reload re-reads: the rules
// file, the exclusion file and Postfix's mynetworks.
type reloadable struct {
	parsers *parsers.Set
	exclude []netip.Prefix
	mynet   postfix.Mynetworks
	origin  origin.Policy
}

// reloadStats counts reloads by outcome and remembers the last one's.
type reloadStats struct {
	ok, failed atomic.Int64
	lastFailed atomic.Bool // the latest Reload was rejected; false from the start, whose load succeeded
}

// Reload re-reads the rules file, the exclusion file and Postfix's
// mynetworks (what SIGHUP asks for) and hands them to the pipeline, which
// applies them between two messages without dropping grants (those inside
// newly excluded networks are removed). A bad new file is rejected with
// an error naming every problem, logged, and the running configuration
// stays.
func (d *Daemon) Reload(ctx context.Context) error {
	conf, err := loadReloadable(ctx, d.cfg)
	if err != nil {
		d.reload.failed.Add(1)
		d.reload.lastFailed.Store(true)
		n := 1
		var l errorList
		if errors.As(err, &l) {
			n = len(l)
		}
		d.log.Error().Err(err).Int("errors", n).Msg("reload rejected; the running configuration stays")
		return err
	}
	select {
	case d.reloads <- conf:
		d.reload.ok.Add(1)
		d.reload.lastFailed.Store(false)
		d.log.Info().Int("parsers", len(conf.parsers.Parsers())).Str("excluded", postfix.JoinPrefixes(conf.exclude)).Msg("reloaded")
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// loadReloadable reads every file the reloadable configuration comes from.
// On error nothing is applied: the caller keeps the configuration it has.
// Every file is read even after one fails, and the error names each
// failure, so that one SIGHUP (or one failed start) shows everything to fix
// rather than one problem per attempt.
func loadReloadable(ctx context.Context, cfg Config) (reloadable, error) {
	var r reloadable
	var errs []error
	var err error
	if r.parsers, err = BuildParsers(cfg.Parsers); err != nil {
		errs = append(errs, err)
	}
	if r.mynet, err = postfix.ResolveMynetworks(ctx, cfg.Mynetworks, cfg.PostfixConfig); err != nil {
		errs = append(errs, err)
	}
	r.exclude = append(append([]netip.Prefix{}, cfg.Exclude...), r.mynet.Prefixes...)
	if cfg.ExcludeFile != "" {
		fromFile, err := readExcludeFile(cfg.ExcludeFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("-exclude-file: %w", err))
		}
		r.exclude = append(r.exclude, fromFile...)
	}
	if r.origin, err = loadOriginPolicy(cfg.Origin, r.parsers); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return reloadable{}, joinErrors(errs)
	}
	return r, nil
}

// errorList is errors.Join on one line: the log line and the startup error
// name every failure, "; "-separated, and errors.Is/As see each of them.
type errorList []error

func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return errorList(errs)
}

func (l errorList) Error() string {
	s := make([]string, len(l))
	for i, err := range l {
		s[i] = err.Error()
	}
	return fmt.Sprintf("%d errors: %s", len(l), strings.Join(s, "; "))
}

func (l errorList) Unwrap() []error { return l }

// maxBadLines bounds the lines one error names, so a wrong file (a log
// given as -exclude-file) makes a readable error, not a megabyte.
const maxBadLines = 10

// readExcludeFile reads one CIDR (or address) per line; "#" starts a comment.
// The error names every bad line (up to maxBadLines), not just the first.
func readExcludeFile(path string) ([]netip.Prefix, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	var bad []string
	badLines := 0
	for i, line := range strings.Split(string(data), "\n") {
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		p, err := postfix.ParsePrefix(line)
		if err != nil && len(line) > 80 {
			err = fmt.Errorf("%q… is not an address or CIDR", line[:80])
		}
		if err != nil {
			if badLines++; badLines <= maxBadLines {
				bad = append(bad, fmt.Sprintf("%s:%d: %v", path, i+1, err))
			}
			continue
		}
		out = append(out, p)
	}
	if badLines > maxBadLines {
		bad = append(bad, fmt.Sprintf("and %d more bad lines", badLines-maxBadLines))
	}
	if len(bad) > 0 {
		return nil, errors.New(strings.Join(bad, "; "))
	}
	return out, nil
}
