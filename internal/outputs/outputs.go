// Package outputs publishes the granted addresses to the MTAs other than
// Postfix that the old pop-before-smtp back ends served: qmail's tcpserver
// (a tcprules cdb, merged with the site's own rules), sendmail (a hash map
// built by sendmail's own makemap), OpenSMTPD (a file: table, reloaded
// with smtpctl) and Courier's esmtpd (couriertcpd's access file, built by
// Courier's own makedat from the site's rules and the grants, then a
// SIGHUP). Exim reads relaygate's Postfix map itself and needs no
// output (docs/OTHER-MTAS.md).
//
// Each output is written by a goroutine of its own, only when it is handed
// a new set of addresses (cdbwriter.Config.OnSet: at start, when the set
// changed, at most once per -flush) or, for tcprules, when the site's
// static rules file changed. Its file is replaced atomically (a temporary
// file, fsync, rename, fsync of the directory), so an MTA never reads a
// partial one. A failed write leaves the previous file, is counted and
// logged, and is retried with back-off; it never holds back another
// output, the Postfix map, or the goroutine that owns the grant table.
//
// Only configuration errors stop the start (Config.Check, Build): flags
// without their output, -tcprules-grant that tcprules would refuse or that
// denies, -sendmail-map with .db, an empty -opensmtpd-update or
// -courier-restart, and an output
// on the map, the state file, their lock files or another output. What the
// host lacks or gets wrong at run time (makemap missing, a directory
// relaygate cannot write or read, a static rules file that is missing or
// does not parse) makes that output fail: it starts all the same, and
// its writes are logged, counted and retried with back-off until they work.
package outputs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/internal/metric"
)

// Config is what `relaygate serve` is told about outputs, one flag each.
// The zero Config has none.
type Config struct {
	TCPRules       string // -tcprules: the cdb tcpserver -x reads
	TCPRulesStatic string // -tcprules-static: the site's rules (tcp.smtp), merged before the grants
	TCPRulesGrant  string // -tcprules-grant: a granted address's instructions; "" is DefaultTCPRulesGrant
	SendmailMap    string // -sendmail-map: the hash map's name as sendmail.cf gives it (makemap writes NAME.db)
	OpenSMTPDTable string // -opensmtpd-table: the file: table of granted addresses
	// OpenSMTPDUpdate is the command run after each replace of the
	// table, split on blanks (no shell); "" is DefaultOpenSMTPDUpdate.
	OpenSMTPDUpdate string
	// CourierSmtpaccess is the access file couriertcpd -access reads
	// (-courier-smtpaccess; Debian: ACCESSFILE.dat, /etc/courier/smtpaccess.dat).
	CourierSmtpaccess string
	CourierStatic     string // -courier-smtpaccess-static: the site's rules, a text file or a directory of them
	// CourierRestart is the command run after each replace, split on
	// blanks (no shell); "" is DefaultCourierRestart.
	CourierRestart string
}

// Any says whether an output is configured.
func (c Config) Any() bool {
	return c.TCPRules != "" || c.SendmailMap != "" || c.OpenSMTPDTable != "" || c.CourierSmtpaccess != ""
}

// Check refuses what can never work, naming the flags: options of an
// output that is not configured, instructions tcprules would refuse (or a
// grant that denies), and an output that would overwrite the map, the
// state file, one of their lock files (FILE.lock, FILE.takeover.lock) or
// another output. files are the daemon's own (the map, the state). Paths
// are compared after resolving symbolic links, as far as they exist.
func (c *Config) Check(files ...string) error {
	if c.TCPRules == "" && (c.TCPRulesStatic != "" || c.TCPRulesGrant != "") {
		return errors.New("-tcprules-static and -tcprules-grant are only used with -tcprules")
	}
	if c.OpenSMTPDTable == "" && c.OpenSMTPDUpdate != "" {
		return errors.New("-opensmtpd-update is only used with -opensmtpd-table")
	}
	if c.CourierSmtpaccess == "" && (c.CourierStatic != "" || c.CourierRestart != "") {
		return errors.New("-courier-smtpaccess-static and -courier-restart are only used with -courier-smtpaccess")
	}
	if c.CourierSmtpaccess != "" && len(strings.Fields(c.courierRestart())) == 0 {
		return errors.New("-courier-restart: empty command")
	}
	if c.TCPRules != "" {
		if _, err := c.grantData(); err != nil {
			return fmt.Errorf("-tcprules-grant %q: %w", c.TCPRulesGrant, err)
		}
	}
	if c.SendmailMap != "" && strings.HasSuffix(c.SendmailMap, ".db") {
		return fmt.Errorf("-sendmail-map %s: give the map's name as sendmail.cf does, without .db (makemap and sendmail add it)", c.SendmailMap)
	}
	if c.OpenSMTPDTable != "" && len(strings.Fields(c.opensmtpdUpdate())) == 0 {
		return errors.New("-opensmtpd-update: empty command")
	}
	seen := map[string]string{}
	for _, f := range files {
		if f != "" {
			seen[realPath(f)] = "the map or state file " + f
			seen[realPath(f+".lock")] = "the lock file of " + f
			seen[realPath(f+".takeover.lock")] = "the takeover lock file of " + f
		}
	}
	for _, o := range []struct{ flag, path string }{
		{"-tcprules", c.TCPRules}, {"-tcprules-static", c.TCPRulesStatic},
		{"-sendmail-map", sendmailDB(c.SendmailMap)}, {"-opensmtpd-table", c.OpenSMTPDTable},
		{"-courier-smtpaccess", c.CourierSmtpaccess}, {"-courier-smtpaccess-static", c.CourierStatic},
	} {
		if o.path == "" {
			continue
		}
		p := realPath(o.path)
		if other, ok := seen[p]; ok {
			return fmt.Errorf("%s %s: the same file as %s", o.flag, o.path, other)
		}
		seen[p] = o.flag
	}
	return nil
}

// realPath is path made absolute with its symbolic links resolved: the
// whole path if it exists, else its directory (a file not yet written).
func realPath(path string) string {
	p := abs(path)
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	if r, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
		return filepath.Join(r, filepath.Base(p))
	}
	return p
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func (c Config) opensmtpdUpdate() string {
	if c.OpenSMTPDUpdate == "" {
		return DefaultOpenSMTPDUpdate
	}
	return c.OpenSMTPDUpdate
}

// Output is one more place the granted addresses are published to.
type Output interface {
	// Kind is the output's name in metrics and logs: tcprules, sendmail,
	// opensmtpd, courier.
	Kind() string
	// Path is the file it replaces.
	Path() string
	// Write publishes addrs (unmapped; it must not change the slice) and
	// tells the MTA if it must be told. A failure leaves the previous
	// file in place.
	Write(ctx context.Context, addrs []netip.Addr) error
}

// watcher is an Output whose file also depends on something else that can
// change (the static rules file): Changed, called at each poll, reports
// whether it changed since the output last read it and has since held
// still; the next Write reads it.
type watcher interface{ Changed() bool }

// Build returns the outputs c configures. It fails only on configuration
// errors (those Check refuses): what is missing on the host (makemap, a
// static rules file that parses, a writable directory) is found at each
// write, which fails, is counted and retried until it works.
func Build(c Config) ([]Output, error) {
	var outs []Output
	if c.TCPRules != "" {
		o, err := newTCPRules(c)
		if err != nil {
			return nil, err
		}
		outs = append(outs, o)
	}
	if c.SendmailMap != "" {
		outs = append(outs, newSendmail(c.SendmailMap, ""))
	}
	if c.OpenSMTPDTable != "" {
		argv := strings.Fields(c.opensmtpdUpdate())
		if len(argv) == 0 {
			return nil, errors.New("-opensmtpd-update: empty command")
		}
		outs = append(outs, &openSMTPD{path: c.OpenSMTPDTable, update: argv})
	}
	if c.CourierSmtpaccess != "" {
		if len(strings.Fields(c.courierRestart())) == 0 {
			return nil, errors.New("-courier-restart: empty command")
		}
		outs = append(outs, newCourier(c, ""))
	}
	return outs, nil
}

// logSetter is an Output that logs on its own (what a write left out).
type logSetter interface{ setLogger(zerolog.Logger) }

// sampler is an Output with series of its own.
type sampler interface {
	samples(yield func(metric.Sample))
}
