package origincheck

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relaygate/relaygate/internal/origin"
	"github.com/relaygate/relaygate/internal/postfix"
	"github.com/relaygate/relaygate/internal/testutil"
)

// debianRsyslogConf is Debian 12's /etc/rsyslog.conf, comments trimmed,
// with its include of rsyslog.d turned into rsyslogDir.
const debianRsyslogConf = `# /etc/rsyslog.conf configuration file for rsyslog
module(load="imuxsock") # provides support for local system logging
module(load="imklog")   # provides kernel logging support
#module(load="immark")  # provides --MARK-- message capability
#module(load="imudp")
#input(type="imudp" port="514")
$FileOwner root
$FileGroup adm
$WorkDirectory /var/spool/rsyslog
$IncludeConfig %s/*.conf
*.*;auth,authpriv.none		-/var/log/syslog
auth,authpriv.*			/var/log/auth.log
mail.*				-/var/log/mail.log
*.emerg				:omusrmsg:*
`

// rsyslogHost writes a main rsyslog.conf (Debian's, optionally without its
// imuxsock line) and the given rsyslog.d files; it returns the main file.
func rsyslogHost(t *testing.T, keepImuxsock bool, dropIns map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	d := filepath.Join(dir, "rsyslog.d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	main := strings.Replace(debianRsyslogConf, "%s", d, 1)
	if !keepImuxsock {
		main = strings.Replace(main, `module(load="imuxsock")`, `#module(load="imuxsock")`, 1)
	}
	testutil.WriteFile(t, filepath.Join(dir, "rsyslog.conf"), main, 0o644)
	testutil.WriteFile(t, filepath.Join(d, "postfix.conf"), "$AddUnixListenSocket /var/spool/postfix/dev/log\n", 0o644)
	for name, content := range dropIns {
		testutil.WriteFile(t, filepath.Join(d, name), content, 0o644)
	}
	return filepath.Join(dir, "rsyslog.conf")
}

func example(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tlsVariant is the origin example with its commented TLS action in place
// of the TCP one.
func tlsVariant(t *testing.T) string {
	t.Helper()
	ex := example(t, "rsyslog-relaygate-origin.conf")
	start := strings.Index(ex, "    action(type=\"omfwd\" target=\"127.0.0.1\"")
	end := strings.Index(ex[start:], "\n\n")
	if start < 0 || end < 0 {
		t.Fatal("no TCP action in the example")
	}
	var tlsAction []string
	for _, l := range strings.Split(ex, "\n") {
		if strings.HasPrefix(l, "    # action(") || (len(tlsAction) > 0 && strings.HasPrefix(l, "    #        ")) {
			tlsAction = append(tlsAction, strings.Replace(l, "    # ", "    ", 1))
		}
	}
	if len(tlsAction) == 0 {
		t.Fatal("no commented TLS action in the example")
	}
	return ex[:start] + strings.Join(tlsAction, "\n") + ex[start+end:]
}

var (
	loopback32 = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	// the default listeners of relaygate serve
	defaults = Setup{UDP: "127.0.0.1:5514", TCP: "127.0.0.1:5514"}
)

func with(s Setup, f func(*Setup)) Setup { f(&s); return s }

// find returns the findings with id.
func find(fs []postfix.Finding, id string) []postfix.Finding {
	var out []postfix.Finding
	for _, f := range fs {
		if f.ID == id {
			out = append(out, f)
		}
	}
	return out
}

func kind(f postfix.Finding) string {
	switch {
	case f.Problem:
		return "problem"
	case f.Note:
		return "note"
	}
	return "ok"
}

func TestCheckSetup(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    Setup
		want     string // kind of the "origin" finding
		contains string
		loopback bool // an origin-loopback note
	}{
		{"defaults: verify, tls without a CA", with(defaults, func(s *Setup) { s.FromTLS = true }),
			"note", "needs -tls and -tls-client-ca", false},
		{"off", with(defaults, func(s *Setup) { s.Mode = origin.ModeOff }), "note", "-origin off", false},
		{"require with nothing trusted", with(defaults, func(s *Setup) { s.Mode = origin.ModeRequire; s.FromTLS = true }),
			"problem", "no login line can ever grant", false},
		{"require with a CA but no tls in -origin-from", with(defaults, func(s *Setup) {
			s.Mode, s.TLS, s.TLSClientCA = origin.ModeRequire, "127.0.0.1:6514", "ca.pem"
		}), "problem", "names no address and not tls", false},
		{"require with the journal", with(defaults, func(s *Setup) { s.Mode, s.Journal = origin.ModeRequire, true }),
			"ok", "the journal (-journal)", false},
		{"require with TLS client certificates", with(defaults, func(s *Setup) {
			s.Mode, s.FromTLS, s.TLS, s.TLSClientCA = origin.ModeRequire, true, "127.0.0.1:6514", "ca.pem"
		}), "ok", "TLS senders with a client certificate", false},
		{"require from loopback", with(defaults, func(s *Setup) { s.Mode, s.From = origin.ModeRequire, loopback32 }),
			"ok", "syslog senders in 127.0.0.1/32", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := Check(tc.setup, "")
			o := find(fs, "origin")
			if len(o) != 1 || kind(o[0]) != tc.want || !strings.Contains(o[0].String(), tc.contains) {
				t.Fatalf("got %v, want one %s containing %q", fs, tc.want, tc.contains)
			}
			if o[0].Problem && o[0].Fix == "" {
				t.Errorf("problem without a fix: %v", o[0])
			}
			if got := len(find(fs, "origin-loopback")) == 1; got != tc.loopback {
				t.Errorf("loopback note %v, want %v: %v", got, tc.loopback, fs)
			}
		})
	}
}

func TestCheckRsyslog(t *testing.T) {
	require := func(s *Setup) { s.Mode = origin.ModeRequire }
	fromLoopback := func(s *Setup) { s.Mode, s.From = origin.ModeRequire, loopback32 }
	viaTLS := func(s *Setup) {
		s.Mode, s.FromTLS, s.TLS, s.TLSClientCA = origin.ModeRequire, true, "127.0.0.1:6514", "ca.pem"
	}
	for _, tc := range []struct {
		name         string
		keepImuxsock bool
		dropIns      map[string]string
		setup        func(*Setup)
		want         []string // kind and a substring of each rsyslog-origin finding
		imuxsockTwo  bool
	}{
		{"Debian's own: no forwarding", true, nil, require,
			[]string{"ok", "forwards nothing to relaygate's ports"}, false},
		{"plain UDP example, -origin verify", true, map[string]string{"relaygate.conf": example(t, "rsyslog-relaygate.conf")}, nil,
			[]string{"note", "udp 127.0.0.1:5514, template rsyslog's default) without an origin element"}, false},
		{"plain TCP example, -origin require", true, map[string]string{"relaygate.conf": example(t, "rsyslog-relaygate-tcp.conf")}, require,
			[]string{"problem", "template RSYSLOG_SyslogProtocol23Format) without an origin element: with -origin require its login lines never grant"}, false},
		{"plain TCP example, -origin require -journal", true, map[string]string{"relaygate.conf": example(t, "rsyslog-relaygate-tcp.conf")},
			func(s *Setup) { s.Mode, s.Journal = origin.ModeRequire, true },
			[]string{"note", "without an origin element"}, false},
		{"origin example, Debian's imuxsock line kept", true, map[string]string{"relaygate-origin.conf": example(t, "rsyslog-relaygate-origin.conf")}, fromLoopback,
			[]string{"ok", "with the origin element (template RelaygateOrigin)"}, true},
		{"origin example as documented", false, map[string]string{"relaygate-origin.conf": example(t, "rsyslog-relaygate-origin.conf")}, fromLoopback,
			[]string{"ok", "tcp 127.0.0.1:5514) with the origin element (template RelaygateOrigin) and imuxsock's trusted properties"}, false},
		{"origin example, -origin-from tls only", false, map[string]string{"relaygate-origin.conf": example(t, "rsyslog-relaygate-origin.conf")},
			func(s *Setup) { s.Mode, s.FromTLS = origin.ModeRequire, true },
			[]string{"problem", "from 127.0.0.1, which -origin-from does not name"}, false},
		{"origin example without trusted properties", false, map[string]string{"relaygate-origin.conf": strings.Replace(
			example(t, "rsyslog-relaygate-origin.conf"), `module(load="imuxsock" SysSock.Annotate="on" SysSock.ParseTrusted="on")`, `module(load="imuxsock")`, 1)},
			fromLoopback, []string{"problem", "imuxsock does not read the writer's credentials"}, false},
		{"origin example over TLS", false, map[string]string{"relaygate-origin.conf": tlsVariant(t)}, viaTLS,
			[]string{"ok", "tls relaygate.example.org:6514) with the origin element"}, false},
		{"origin example over TLS, no client CA", false, map[string]string{"relaygate-origin.conf": tlsVariant(t)},
			func(s *Setup) { viaTLS(s); s.TLSClientCA = "" },
			[]string{"problem", "relaygate does not believe TLS senders' elements (-origin-from names no address, and tls needs -tls-client-ca)"}, false},
		{"legacy directives and forwarding", false, map[string]string{"legacy.conf": `$ModLoad imuxsock
$SystemLogSocketAnnotate on
$SystemLogParseTrusted on
$template Origin,"<%PRI%>1 %TIMESTAMP:::date-rfc3339% %HOSTNAME% %APP-NAME% %PROCID% - [relaygate@32473 uid=\"%$!uid%\"] %msg%\n"
mail.* @@127.0.0.1:5514;Origin
`}, fromLoopback, []string{"ok", "legacy.conf:5 tcp 127.0.0.1:5514) with the origin element (template Origin)"}, false},
		{"legacy forward to another port", true, map[string]string{"other.conf": "*.* @@loghost.example.org:514\n"}, require,
			[]string{"ok", "forwards nothing"}, false},
		{"commented-out forwards", true, map[string]string{"old.conf": "# *.* @@127.0.0.1:5514\n/* *.* @127.0.0.1:5514\n*.* @@127.0.0.1:5514 */\n"}, require,
			[]string{"ok", "forwards nothing"}, false},
		{"an address inside a quoted string is no forward", true, map[string]string{"mail.conf": `if $msg contains "@@127.0.0.1:5514" then stop` + "\n"}, require,
			[]string{"ok", "forwards nothing"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := defaults
			if tc.setup != nil {
				tc.setup(&s)
			}
			if s.TLS == "" && strings.Contains(tc.name, "TLS") {
				s.TLS = "127.0.0.1:6514"
			}
			fs := Check(s, rsyslogHost(t, tc.keepImuxsock, tc.dropIns))
			got := find(fs, "rsyslog-origin")
			if len(got) != 1 || kind(got[0]) != tc.want[0] || !strings.Contains(got[0].Msg, tc.want[1]) {
				t.Fatalf("got %v\nwant one %s containing %q", got, tc.want[0], tc.want[1])
			}
			if got[0].Problem && got[0].Fix == "" {
				t.Errorf("problem without a fix: %v", got[0])
			}
			if two := find(fs, "rsyslog-imuxsock"); (len(two) == 1) != tc.imuxsockTwo {
				t.Errorf("imuxsock loaded twice reported: %v, want %v", two, tc.imuxsockTwo)
			}
		})
	}
}

func TestCheckRsyslogMissingOrBroken(t *testing.T) {
	s := with(defaults, func(s *Setup) { s.Mode = origin.ModeRequire })
	fs := find(Check(s, filepath.Join(t.TempDir(), "rsyslog.conf")), "rsyslog-origin")
	if len(fs) != 1 || kind(fs[0]) != "ok" || !strings.Contains(fs[0].Msg, "no rsyslog configuration") {
		t.Errorf("missing configuration: %v", fs)
	}
	// An include loop ends with an error, not a hang.
	dir := t.TempDir()
	testutil.WriteFile(t, filepath.Join(dir, "a.conf"), `include(file="`+filepath.Join(dir, "a.conf")+`")`+"\n", 0o644)
	fs = find(Check(s, filepath.Join(dir, "a.conf")), "rsyslog-origin")
	if len(fs) != 1 || !fs[0].Problem || !strings.Contains(fs[0].Msg, "nested deeper") {
		t.Errorf("include loop: %v", fs)
	}
	// -origin off reads nothing.
	if fs := Check(with(defaults, func(s *Setup) { s.Mode = origin.ModeOff }), filepath.Join(dir, "a.conf")); len(fs) != 1 {
		t.Errorf("-origin off: %v", fs)
	}
}

// TestReadRsyslogExample: the shipped example reads as one TCP forward
// with the origin template, and imuxsock trusted.
func TestReadRsyslogExample(t *testing.T) {
	dir := t.TempDir()
	testutil.WriteFile(t, filepath.Join(dir, "r.conf"), example(t, "rsyslog-relaygate-origin.conf"), 0o644)
	rs, err := readRsyslog(filepath.Join(dir, "r.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.forwards) != 1 || !rs.trusted || rs.imuxsockLoads != 1 {
		t.Fatalf("forwards %v trusted %v loads %d", rs.forwards, rs.trusted, rs.imuxsockLoads)
	}
	f := rs.forwards[0]
	if f.target != "127.0.0.1" || f.port != 5514 || f.udp || f.tls || f.template != "RelaygateOrigin" || !rs.carriesOrigin(f) {
		t.Fatalf("forward %+v", f)
	}
}

// TestJournalBesideOpenListeners: -journal under verify with a syslog
// listener whose lines carry no writer is a problem (found by an attack
// round: a local user's UDP line was granted beside the journal).
func TestJournalBesideOpenListeners(t *testing.T) {
	has := func(fs []postfix.Finding) bool {
		for _, f := range fs {
			if f.ID == "origin-listeners" && f.Problem {
				return true
			}
		}
		return false
	}
	if !has(Check(Setup{Mode: origin.ModeVerify, Journal: true, UDP: "127.0.0.1:5514"}, "")) {
		t.Error("journal + udp under verify not reported")
	}
	if has(Check(Setup{Mode: origin.ModeRequire, Journal: true, UDP: "127.0.0.1:5514"}, "")) {
		t.Error("reported under require")
	}
	if has(Check(Setup{Mode: origin.ModeVerify, Journal: true}, "")) {
		t.Error("reported with the journal alone")
	}
	if has(Check(Setup{Mode: origin.ModeVerify, Journal: true, Unix: "/run/relaygate/log", FromUnix: []uint32{0}}, "")) {
		t.Error("reported for a unix socket whose senders are named")
	}
}

// An rsyslog that loads imjournal beside an origin element built from
// imuxsock's properties: without the $inputname guard a local user's
// native journal entry with UID=0 is forwarded as uid 0 (imjournal's $!UID
// is $!uid to rsyslog); the shipped examples are not flagged.
func TestCheckRsyslogImjournal(t *testing.T) {
	const imjournal = `module(load="imjournal" StateFile="imjournal.state")` + "\n"
	unguarded := strings.Replace(example(t, "rsyslog-relaygate-origin.conf"), `if $inputname == "imuxsock" and $!uid != "" then {`, `if $!uid != "" then {`, 1)
	if unguarded == example(t, "rsyslog-relaygate-origin.conf") {
		t.Fatal("the example has no $inputname guard to take out")
	}
	fromLoopback := func(s *Setup) { s.Mode, s.From = origin.ModeRequire, loopback32 }
	for _, tc := range []struct {
		name      string
		dropIns   map[string]string
		forgeable bool
		origin    string // substring of the rsyslog-origin finding, which is ok
	}{
		{"origin example, imjournal loaded", map[string]string{"00-imjournal.conf": imjournal, "relaygate-origin.conf": example(t, "rsyslog-relaygate-origin.conf")},
			false, "imuxsock's trusted properties"},
		{"origin example without the guard, no imjournal", map[string]string{"relaygate-origin.conf": unguarded},
			false, "imuxsock's trusted properties"},
		{"origin example without the guard, imjournal loaded", map[string]string{"00-imjournal.conf": imjournal, "relaygate-origin.conf": unguarded},
			true, "imuxsock's trusted properties"},
		{"legacy template with $!uid, $ModLoad imjournal", map[string]string{"legacy.conf": `$ModLoad imuxsock
$SystemLogSocketAnnotate on
$SystemLogParseTrusted on
$ModLoad imjournal
$template Origin,"<%PRI%>1 %TIMESTAMP:::date-rfc3339% %HOSTNAME% %APP-NAME% %PROCID% - [relaygate@32473 uid=\"%$!UID%\"] %msg%\n"
mail.* @@127.0.0.1:5514;Origin
`}, true, "with the origin element (template Origin)"},
		{"imjournal example", map[string]string{"00-imjournal.conf": imjournal, "relaygate-origin.conf": example(t, "rsyslog-relaygate-origin-imjournal.conf")},
			false, "with the origin element (template RelaygateOriginJournal) and the journal's trusted fields"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := defaults
			fromLoopback(&s)
			fs := Check(s, rsyslogHost(t, false, tc.dropIns))
			if got := find(fs, "rsyslog-origin"); len(got) != 1 || kind(got[0]) != "ok" || !strings.Contains(got[0].Msg, tc.origin) {
				t.Errorf("rsyslog-origin: %v, want ok with %q", got, tc.origin)
			}
			got := find(fs, "rsyslog-imjournal")
			if (len(got) == 1) != tc.forgeable {
				t.Fatalf("rsyslog-imjournal: %v, want reported %v", got, tc.forgeable)
			}
			if tc.forgeable && (!got[0].Problem || got[0].Fix == "" || !strings.Contains(got[0].Msg, "$inputname")) {
				t.Errorf("rsyslog-imjournal: %v", got[0])
			}
		})
	}
	// The imjournal example without imjournal loaded has no credentials to
	// build the element from.
	fs := find(Check(with(defaults, fromLoopback), rsyslogHost(t, false, map[string]string{
		"relaygate-origin.conf": example(t, "rsyslog-relaygate-origin-imjournal.conf")})), "rsyslog-origin")
	if len(fs) != 1 || !fs[0].Problem {
		t.Errorf("imjournal example without imjournal: %v", fs)
	}
}

// TestReadRsyslogImjournalExample: the imjournal example reads as one TCP
// forward with its origin template, built from the journal's _UID only.
func TestReadRsyslogImjournalExample(t *testing.T) {
	dir := t.TempDir()
	testutil.WriteFile(t, filepath.Join(dir, "r.conf"), example(t, "rsyslog-relaygate-origin-imjournal.conf"), 0o644)
	rs, err := readRsyslog(filepath.Join(dir, "r.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.forwards) != 1 || !rs.journalVars || rs.imuxsockVars != "" || rs.imuxsockLoads != 0 || rs.imjournal {
		t.Fatalf("forwards %v journalVars %v imuxsockVars %q loads %d imjournal %v", rs.forwards, rs.journalVars, rs.imuxsockVars, rs.imuxsockLoads, rs.imjournal)
	}
	if f := rs.forwards[0]; f.port != 5514 || f.template != "RelaygateOriginJournal" || !rs.carriesOrigin(f) {
		t.Fatalf("forward %+v", f)
	}
}
