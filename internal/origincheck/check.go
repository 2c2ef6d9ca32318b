// Package origincheck is `relaygate check`'s view of origin (issue 13):
// whether the log path of this host can carry a verified writer for each
// login line to relaygate, and whether relaygate, as configured, will
// believe it. It reads relaygate's -origin settings and the local rsyslog
// configuration; it changes nothing.
package origincheck

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/relaygate/relaygate/internal/daemon"
	"github.com/relaygate/relaygate/internal/origin"
	"github.com/relaygate/relaygate/internal/postfix"
)

// Setup is what `relaygate serve` is told that decides whether a line's
// origin can be verified.
type Setup struct {
	Mode        origin.Mode
	From        []netip.Prefix // -origin-from CIDRs
	FromTLS     bool           // -origin-from tls
	FromUnix    []uint32       // -origin-from unix, unix:USER
	Unix        string         // -unix
	TLSClientCA string         // -tls-client-ca
	Journal     bool           // -journal
	// Listeners: -udp, -tcp and -tls addresses ("" when off).
	UDP, TCP, TLS string
	RELP          string // -relp ("" when off)
	RELPTLS       bool   // -relp-tls
}

// SetupOf is the Setup of relaygate serve's configuration c.
func SetupOf(c daemon.Config) Setup {
	return Setup{Mode: c.Origin.Mode, From: c.Origin.From, FromTLS: c.Origin.FromTLS, TLSClientCA: c.TLSClientCA,
		FromUnix: c.Origin.FromUnix, Unix: c.Unix,
		Journal: c.Journal.On, UDP: c.UDP, TCP: c.TCP, TLS: c.TLS, RELP: c.RELP.Addr, RELPTLS: c.RELP.TLS}
}

// RsyslogConf is where rsyslog's configuration is, for `relaygate check`.
const RsyslogConf = "/etc/rsyslog.conf"

const fixOrigin = "forward with examples/rsyslog-relaygate-origin.conf (imuxsock's trusted properties in a " +
	origin.DefaultSDID + " element) over TLS with a client certificate and run relaygate with -tls-client-ca and -origin-from tls " +
	"(or over TCP to 127.0.0.1 with -origin-from 127.0.0.1/32 on a host without local users), or read the journal with -journal"

// Check reports whether origins can be verified: from relaygate's settings
// alone, then from the rsyslog configuration at rsyslogConf ("" skips it).
func Check(s Setup, rsyslogConf string) []postfix.Finding {
	out := checkSetup(s)
	if rsyslogConf != "" && s.Mode != origin.ModeOff {
		out = append(out, checkRsyslog(s, rsyslogConf)...)
	}
	return out
}

// tlsTrusted says whether a TLS sender can add an origin element.
func (s Setup) tlsTrusted() bool {
	return s.FromTLS && s.TLSClientCA != "" && (s.TLS != "" || (s.RELP != "" && s.RELPTLS))
}

func checkSetup(s Setup) []postfix.Finding {
	if s.Mode == origin.ModeOff {
		return []postfix.Finding{{ID: "origin", Note: true,
			Msg: "-origin off: relaygate does not look at who wrote a login line, so any local user of a log host can grant relay to an address of their choosing (SECURITY.md)"}}
	}
	var paths []string
	if s.Journal {
		paths = append(paths, "the journal (-journal)")
	}
	if len(s.From) > 0 {
		var cidrs []string
		for _, p := range s.From {
			cidrs = append(cidrs, p.String())
		}
		paths = append(paths, "syslog senders in "+strings.Join(cidrs, ", "))
	}
	if s.tlsTrusted() {
		paths = append(paths, "TLS senders with a client certificate of -tls-client-ca")
	}
	if len(s.FromUnix) > 0 && s.Unix != "" {
		uids := make([]string, len(s.FromUnix))
		for i, u := range s.FromUnix {
			uids[i] = fmt.Sprint(u)
		}
		paths = append(paths, "uid "+strings.Join(uids, ", ")+" writing to the -unix socket "+s.Unix)
	}
	var out []postfix.Finding
	switch {
	case len(paths) > 0:
		out = append(out, postfix.Finding{ID: "origin",
			Msg: fmt.Sprintf("-origin %s: a line's writer is believed from %s", s.Mode, strings.Join(paths, "; "))})
	case s.Mode == origin.ModeRequire:
		out = append(out, postfix.Finding{ID: "origin", Problem: true,
			Msg: "-origin require, but relaygate believes no log path's origin" + whyNoTLS(s) + " and -journal is off: no login line can ever grant",
			Fix: fixOrigin})
	default:
		out = append(out, postfix.Finding{ID: "origin", Note: true,
			Msg: "-origin verify, but relaygate believes no log path's origin" + whyNoTLS(s) +
				" and -journal is off: every line is judged without its writer, so any local user of a log host can grant relay (SECURITY.md; " + fixOrigin + ")"})
	}
	if s.Journal && s.Mode == origin.ModeVerify {
		var open []string
		for _, l := range []struct{ flag, addr string }{{"-udp", s.UDP}, {"-tcp", s.TCP}} {
			if l.addr != "" {
				open = append(open, l.flag+" "+l.addr)
			}
		}
		if s.TLS != "" && !s.tlsTrusted() {
			open = append(open, "-tls "+s.TLS)
		}
		if s.RELP != "" && !(s.RELPTLS && s.tlsTrusted()) {
			open = append(open, "-relp "+s.RELP)
		}
		if s.Unix != "" && len(s.FromUnix) == 0 {
			open = append(open, "-unix "+s.Unix)
		}
		if len(open) > 0 {
			out = append(out, postfix.Finding{ID: "origin-listeners", Problem: true,
				Msg: "-journal with -origin verify, and " + strings.Join(open, ", ") + " also listening: lines arriving there carry no verified writer and grant as before, so any local user who can reach them can grant relay",
				Fix: "run -origin require, or turn those listeners off (with -journal, -udp and -tcp are off unless given)"})
		}
	}
	for _, p := range s.From {
		if p.Addr().IsLoopback() {
			out = append(out, postfix.Finding{ID: "origin-loopback", Note: true,
				Msg: fmt.Sprintf("-origin-from trusts %s: every local user of this host can connect from there and send an origin element of their choosing; on a host with local users, trust only TLS client certificates (-origin-from tls) or the journal", p)})
			break
		}
	}
	return out
}

// whyNoTLS explains why TLS senders are not believed, in the words of the
// flags.
func whyNoTLS(s Setup) string {
	switch {
	case !s.FromTLS:
		return " (-origin-from names no address and not tls)"
	case s.TLS == "" && !(s.RELP != "" && s.RELPTLS):
		return " (-origin-from names no address, and tls needs -tls and -tls-client-ca)"
	case s.TLSClientCA == "":
		return " (-origin-from names no address, and tls needs -tls-client-ca)"
	}
	return ""
}

// checkRsyslog reads the rsyslog configuration and judges each action that
// forwards to one of relaygate's ports.
func checkRsyslog(s Setup, conf string) []postfix.Finding {
	if _, err := os.Stat(conf); errors.Is(err, fs.ErrNotExist) {
		return []postfix.Finding{{ID: "rsyslog-origin", Msg: "no rsyslog configuration at " + conf + "; rsyslog not checked"}}
	}
	rs, err := readRsyslog(conf)
	if err != nil {
		return []postfix.Finding{{ID: "rsyslog-origin", Problem: true,
			Msg: "reading rsyslog's configuration: " + err.Error(), Fix: "make it readable, or name another with -rsyslog-config (\"\" skips it)"}}
	}
	var out []postfix.Finding
	if rs.imuxsockLoads > 1 {
		out = append(out, postfix.Finding{ID: "rsyslog-imuxsock", Problem: true,
			Msg: fmt.Sprintf("rsyslog loads imuxsock %d times (%s): rsyslogd refuses the configuration (\"module 'imuxsock' already in this config\")", rs.imuxsockLoads, conf),
			Fix: "keep one module(load=\"imuxsock\" SysSock.Annotate=\"on\" SysSock.ParseTrusted=\"on\"): delete Debian's module(load=\"imuxsock\") line from /etc/rsyslog.conf when using examples/rsyslog-relaygate-origin.conf"})
	}
	var mine []forward
	for _, f := range rs.forwards {
		if s.listens(f) {
			mine = append(mine, f)
		}
	}
	if len(mine) == 0 {
		return append(out, postfix.Finding{ID: "rsyslog-origin",
			Msg: fmt.Sprintf("rsyslog (%s) forwards nothing to relaygate's ports", conf)})
	}
	for _, f := range mine {
		out = append(out, s.judgeForward(rs, f))
	}
	if f, ok := imjournalForgeable(rs, mine); ok {
		out = append(out, f)
	}
	return out
}

// imjournalForgeable reports an rsyslog that loads imjournal and builds
// an origin element from imuxsock's trusted properties without testing
// that the line came in through imuxsock: imjournal puts every field of a
// journal entry in $!, and a local user's own field UID=0 is $!uid to
// rsyslog (its variable names ignore case).
func imjournalForgeable(rs *rsyslogSetup, mine []forward) (postfix.Finding, bool) {
	if !rs.imjournal || rs.imuxsockVars == "" || rs.inputGuard {
		return postfix.Finding{}, false
	}
	for _, f := range mine {
		if rs.carriesOrigin(f) {
			return postfix.Finding{ID: "rsyslog-imjournal", Problem: true,
				Msg: fmt.Sprintf("rsyslog loads imjournal and builds the origin element from imuxsock's properties (%s) without testing $inputname: "+
					"imjournal puts every field of a journal entry in $!, and any local user can send journald an entry with UID=0, EXE=… of their choosing, "+
					"which rsyslog reads as $!uid, $!exe (its variable names ignore case): the element it forwards is forged, and grants", rs.imuxsockVars),
				Fix: "build the element only for imuxsock's lines, as examples/rsyslog-relaygate-origin.conf does (if $inputname == \"imuxsock\" and $!uid != \"\" then …), " +
					"or, for rsyslog reading the journal, use examples/rsyslog-relaygate-origin-imjournal.conf (only the journal's own $!_UID, $!_GID, … fields), or relaygate -journal"}, true
		}
	}
	return postfix.Finding{}, false
}

// listens says whether f goes to one of relaygate's listeners, by port and
// transport (the target may be any name of this or another host).
func (s Setup) listens(f forward) bool {
	port := func(addr string) int {
		if addr == "" {
			return -1
		}
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			return -1
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return -1
		}
		return n
	}
	switch {
	case f.udp:
		return f.port == port(s.UDP)
	case f.tls:
		return f.port == port(s.TLS)
	}
	return f.port == port(s.TCP)
}

func (s Setup) judgeForward(rs *rsyslogSetup, f forward) postfix.Finding {
	tpl := f.template
	if tpl == "" {
		tpl = "rsyslog's default"
	}
	if !rs.carriesOrigin(f) {
		msg := fmt.Sprintf("rsyslog forwards to relaygate (%s, template %s) without an origin element", f, tpl)
		if s.Mode == origin.ModeRequire && !s.Journal {
			return postfix.Finding{ID: "rsyslog-origin", Problem: true,
				Msg: msg + ": with -origin require its login lines never grant", Fix: fixOrigin}
		}
		return postfix.Finding{ID: "rsyslog-origin", Note: true,
			Msg: msg + ": its lines are judged without their writer, and any local user can grant relay through it (" + fixOrigin + ")"}
	}
	journal := rs.imjournal && rs.journalVars // the journal's own fields, through imjournal
	if !rs.trusted && !journal {
		return postfix.Finding{ID: "rsyslog-origin", Problem: true,
			Msg: fmt.Sprintf("rsyslog forwards to relaygate (%s) with the origin template %s, but imuxsock does not read the writer's credentials: the element is missing or empty, and the lines never grant under -origin require", f, f.template),
			Fix: "load imuxsock as module(load=\"imuxsock\" SysSock.Annotate=\"on\" SysSock.ParseTrusted=\"on\") (in place of Debian's module(load=\"imuxsock\") in /etc/rsyslog.conf), and restart rsyslog"}
	}
	if f.tls && !s.tlsTrusted() {
		return postfix.Finding{ID: "rsyslog-origin", Problem: true,
			Msg: fmt.Sprintf("rsyslog forwards origin elements to relaygate over TLS (%s), but relaygate does not believe TLS senders' elements%s: they are refused (untrusted_sender)", f, whyNoTLS(s)),
			Fix: "run relaygate with -tls-client-ca CA.pem and -origin-from tls, and give rsyslog a client certificate of that CA"}
	}
	if !f.tls {
		if src, ok := loopbackSource(f.target); ok && !s.trustsAddr(src) {
			return postfix.Finding{ID: "rsyslog-origin", Problem: true,
				Msg: fmt.Sprintf("rsyslog forwards origin elements to relaygate (%s) from %s, which -origin-from does not name: they are refused (untrusted_sender)", f, src),
				Fix: fmt.Sprintf("add %s/%d to -origin-from (only on a host without local users: any of them can connect from there too), or forward over TLS with a client certificate and -origin-from tls", src, src.BitLen())}
		}
	}
	from := "imuxsock's trusted properties"
	if !rs.trusted {
		from = "the journal's trusted fields (imjournal, $!_UID)"
	}
	return postfix.Finding{ID: "rsyslog-origin",
		Msg: fmt.Sprintf("rsyslog forwards to relaygate (%s) with the origin element (template %s) and %s", f, f.template, from)}
}

// loopbackSource is the address rsyslog connects from to a loopback
// target; ok is false for other targets, whose source this host cannot
// tell.
func loopbackSource(target string) (netip.Addr, bool) {
	if strings.EqualFold(target, "localhost") {
		return netip.MustParseAddr("127.0.0.1"), true
	}
	a, err := netip.ParseAddr(target)
	if err != nil || !a.IsLoopback() {
		return netip.Addr{}, false
	}
	if a.Is4() {
		return netip.MustParseAddr("127.0.0.1"), true // Linux picks 127.0.0.1 for any 127/8 target
	}
	return a, true
}

func (s Setup) trustsAddr(a netip.Addr) bool {
	for _, p := range s.From {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
