//go:build e2e

package e2e

// Issue 13, "Origin": real Dovecot → rsyslog (imuxsock with the trusted
// properties and the template of examples/rsyslog-relaygate-origin.conf,
// read from the file, so the shipped example is what is tested) → relaygate
// -origin require → real Postfix. Dovecot's logins grant; the same login
// line written with logger(1) by uid 65534 through the same rsyslog, a
// forged origin element in a message's text, a forger's own RFC 5424
// STRUCTURED-DATA, an executable whose path tries to close the element, and
// an element sent straight to relaygate by a sender not in -origin-from are
// refused and counted by reason. With rsyslog's imjournal loaded as well
// (RHEL's default), a local user's native journal entry with fields UID=0,
// EXE=/usr/lib/dovecot/log, … (which imjournal hands rsyslog as $!uid, $!exe)
// goes without an element and is refused; and through
// examples/rsyslog-relaygate-origin-imjournal.conf (the journal's "_" fields
// only) real Dovecot grants while that forgery is refused as uid 65534.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/origin"
	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/receiver/syslogmsg"
)

// originExample is the shipped rsyslog configuration under test.
const originExample = "../examples/rsyslog-relaygate-origin.conf"

// originTCP is where the example forwards (relaygate's default TCP port).
const originTCP = "127.0.0.1:5514"

// originRefused is the refusal counter of one reason.
func originRefused(reason string) string {
	return fmt.Sprintf(`relaygate_origin_refused_total{reason=%q}`, reason)
}

// originExampleConf returns the example's text. With tlsAction set, its
// active omfwd action (TCP to 127.0.0.1:5514) is replaced by its commented
// TLS action, uncommented and pointed at the test's relaygate and PKI.
func originExampleConf(t *testing.T, p *testutil.PKI) string {
	t.Helper()
	b, err := os.ReadFile(originExample)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	if p == nil {
		return conf
	}
	active := regexp.MustCompile(`(?m)^    action\(type="omfwd" target="127\.0\.0\.1"[^)]*\)\n`)
	commented := regexp.MustCompile(`(?m)^    # action\(type="omfwd" target="relaygate\.example\.org"(?:[^)]|\n)*?\)\n`)
	if len(active.FindAllString(conf, -1)) != 1 || len(commented.FindAllString(conf, -1)) != 1 {
		t.Fatalf("%s: want exactly one active TCP action and one commented TLS action", originExample)
	}
	host, port, _ := net.SplitHostPort(syslogTLS)
	tlsAction := strings.NewReplacer(
		"    # ", "    ",
		`target="relaygate.example.org"`, `target="`+host+`"`,
		`port="6514"`, `port="`+port+`"`,
		`StreamDriverPermittedPeers="relaygate.example.org"`, `StreamDriverPermittedPeers="`+tlsServerName+`"`,
		"/etc/rsyslog.d/relaygate-tls/ca.pem", p.CAFile,
		"/etc/rsyslog.d/relaygate-tls/client.pem", p.ClientCertFile,
		"/etc/rsyslog.d/relaygate-tls/client.key", p.ClientKeyFile,
	).Replace(commented.FindString(conf))
	if strings.Contains(tlsAction, "example.org") || strings.Contains(tlsAction, "#") {
		t.Fatalf("TLS action of %s not made:\n%s", originExample, tlsAction)
	}
	return active.ReplaceAllLiteralString(conf, tlsAction)
}

// rsyslogOrigin is a stackOpts.syslogd hook: rsyslog running the example
// (its module line makes the namespace's /dev/log, with the trusted
// properties), plus a file of everything (s.allLog) and one of the origin
// element each mail line was forwarded with (originLog).
func rsyslogOrigin(example string) func(s *stack) { return rsyslogOriginWith(false, example) }

// rsyslogOriginWith is rsyslogOrigin, with imjournal loaded too if
// imjournal is set (as RHEL's rsyslog.conf loads it), reading the
// journald of startJournald.
func rsyslogOriginWith(imjournal bool, example string) func(s *stack) {
	return func(s *stack) {
		t := s.t
		dir := filepath.Join(s.dir, "rsyslog")
		mkdirs(t, 0o755, filepath.Join(dir, "work"))
		conf := filepath.Join(dir, "rsyslog.conf")
		modules := ""
		if imjournal {
			modules = fmt.Sprintf(`module(load="imjournal" StateFile="%s")`, filepath.Join(dir, "work", "imjournal.state"))
		}
		testutil.WriteFile(t, conf, fmt.Sprintf(`# relaygate e2e: an example as shipped
global(workDirectory="%s")
%s
%s
# e2e only: what was received, and the element each mail line went with
template(name="e2eOrigin" type="string" string="%%$.relaygate_sd%% %%programname%%: %%msg%%\n")
if $syslogfacility-text == 'mail' then action(type="omfile" file="%s" template="e2eOrigin")
*.* action(type="omfile" file="%s")
`, filepath.Join(dir, "work"), modules, example, originLog(s), s.allLog), 0o644)
		run(t, "rsyslogd", "-N1", "-f", conf)
		startProc(t, "rsyslogd", filepath.Join(dir, "rsyslogd.out"),
			exec.Command("rsyslogd", "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid")))
		waitSyslog(t, s.allLog)
	}
}

func originLog(s *stack) string { return filepath.Join(s.dir, "syslog", "origin.log") }

// forwardedOrigin returns the origin element rsyslog forwarded with the
// first mail line containing substr, as relaygate reads it.
func forwardedOrigin(t *testing.T, s *stack, substr string) origin.Origin {
	t.Helper()
	waitLog(t, originLog(s), substr, 10*time.Second)
	line := grepLines(originLog(s), substr)
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	// The line starts with the element: read it as RFC 5424 SD.
	env, err := syslogmsg.ParseEnvelope([]byte("<22>1 - mail e2e - - " + line))
	if err != nil || env.SD == "" {
		t.Fatalf("%s: no origin element on the line %q: %v", originLog(s), line, err)
	}
	sd := env.SD
	elems, err := syslogmsg.ParseStructuredData(sd)
	if err != nil {
		t.Fatalf("STRUCTURED-DATA %q: %v", sd, err)
	}
	var (
		params []origin.Param
		found  bool
	)
	for _, el := range elems { // syslog-ng adds [meta sequenceId=…]
		if el.ID != origin.DefaultSDID {
			continue
		}
		found = true
		for _, p := range el.Params {
			params = append(params, origin.Param{Name: p.Name, Value: p.Value})
		}
	}
	if !found {
		t.Fatalf("no %s element in %q", origin.DefaultSDID, sd)
	}
	o, err := origin.ParseElement(params)
	if err != nil {
		t.Fatalf("origin element %q: %v", sd, err)
	}
	return o
}

// forgeLogin writes a Dovecot login line for addr to /dev/log with
// logger(1) (or the program at loggerPath), as uid 65534, with any logger
// arguments in extra. logger reads the line from a pipe that stays open
// until the line's session=<…> is in s's origin log, so it is still
// running when rsyslog looks up its executable and name in /proc, however
// late a loaded machine lets rsyslog read it.
func forgeLogin(t *testing.T, s *stack, loggerPath, text string, extra ...string) {
	t.Helper()
	args := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", loggerPath,
		"-p", "mail.info", "-t", "dovecot"}, extra...)
	session := forgedSession.FindString(text)
	if session == "" {
		t.Fatalf("forgeLogin: %q has no session=<…> to wait for", text)
	}
	cmd := exec.Command("setpriv", args...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = pr
	out, err := os.CreateTemp(t.TempDir(), "logger")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	waited := false
	t.Cleanup(func() {
		if !waited {
			pw.Close()
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	fmt.Fprintln(pw, text)
	if _, ok := testutil.Poll(hangGuard(10*time.Second), 20*time.Millisecond, func() bool { return testutil.FileContains(originLog(s), session) }); !ok {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("%s did not reach %s; setpriv %v said:\n%s", session, originLog(s), args, b)
	}
	pw.Close()
	waited = true
	if err := cmd.Wait(); err != nil {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("setpriv %v: %v\n%s", args, err, b)
	}
}

// forgedSession finds the session=<…> of a forged line: the mark
// forgeLogin waits for in the origin log.
var forgedSession = regexp.MustCompile(`session=<[^>]*>`)

// popLine is a Dovecot 2.3 POP3 login line for addr.
func popLine(addr, session string) string {
	return fmt.Sprintf("pop3-login: Login: user=<alice>, method=PLAIN, rip=%s, lip=127.0.0.1, mpid=4711, session=<%s>", addr, session)
}

// sendDirect sends one octet-counted RFC 5424 message over c.
func sendDirect(t *testing.T, c net.Conn, sd, text string) {
	t.Helper()
	line := fmt.Sprintf("<22>1 %s mail dovecot - - %s %s", time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"), sd, text)
	if _, err := fmt.Fprintf(c, "%d %s", len(line), line); err != nil {
		t.Fatalf("sending to relaygate: %v", err)
	}
}

// expectRefused waits until reason has been counted want times and checks
// that addr got no grant: a later real login (barrierSrc) is granted
// first, so relaygate has read everything before it.
func expectRefused(t *testing.T, s *stack, reason string, want float64, addr, barrierSrc string) {
	t.Helper()
	waitMetric(t, originRefused(reason), want, 15*time.Second)
	l := mustLogin(t, pop3Login, barrierSrc, "alice", "alicepw", true)
	grantedWithin(t, barrierSrc, l)
	expectInMap(t, s.mapBase, addr, false)
	expectRCPT(t, addr, 554)
	t.Logf("%s: refused, %s = %v", addr, originRefused(reason), metrics(t)[originRefused(reason)])
}

// forwarder says what the syslog daemon under test forwards.
type forwarder struct {
	// comm: whether it carries the process name (rsyslog's $!appname;
	// syslog-ng 3.38 has none).
	comm bool
	// parses5424: whether its /dev/log source reads a local writer's own
	// RFC 5424 STRUCTURED-DATA (syslog-ng's system() does, with
	// flags(syslog-protocol); rsyslog's system socket does not).
	parses5424 bool
}

var (
	rsyslogFwd  = forwarder{comm: true}
	syslogNGFwd = forwarder{parses5424: true}
)

// originForgeries runs the forgeries through the syslog daemon that every
// transport must refuse, and checks that the real Dovecot's grants came
// with the origin of its log process. Addresses 127.0.0.2–19 are real
// logins, 127.0.0.20+ forged.
func originForgeries(t *testing.T, s *stack, fwd forwarder) {
	t.Helper()
	expectRCPT(t, "127.0.0.2", 554)

	start := time.Now()
	l := mustLogin(t, pop3Login, "127.0.0.2", "alice", "alicepw", true)
	grantedWithin(t, "127.0.0.2", l)
	l = mustLogin(t, imapLogin, "127.0.0.3", "bob", "bobpw", true)
	grantedWithin(t, "127.0.0.3", l)
	dovecot := forwardedOrigin(t, s, "rip=127.0.0.2, lip=127.0.0.1")
	t.Logf("real Dovecot's login lines come from: %s (%v for two logins)", dovecot, time.Since(start).Round(time.Millisecond))
	if dovecot.UID != 0 || dovecot.Exe != "/usr/lib/dovecot/log" || (dovecot.Comm != "log") != !fwd.comm {
		t.Errorf("Dovecot's login line came from %s; want uid 0, /usr/lib/dovecot/log (docs/E2E.md says so)", dovecot)
	}
	if o := forwardedOrigin(t, s, "rip=127.0.0.3, lip=127.0.0.1"); o.UID != dovecot.UID || o.Exe != dovecot.Exe {
		t.Errorf("Dovecot's IMAP login came from %s, its POP3 login from %s", o, dovecot)
	}

	t.Run("logger-uid-65534", func(t *testing.T) {
		forgeLogin(t, s, "logger", popLine("127.0.0.20", "forged1"))
		o := forwardedOrigin(t, s, "rip=127.0.0.20,")
		t.Logf("the forger's line came with: %s", o)
		if o.UID != 65534 || o.Exe != "/usr/bin/logger" || (o.Comm != "logger") != !fwd.comm {
			t.Errorf("forged line's origin %s, want uid 65534 exe /usr/bin/logger", o)
		}
		expectRefused(t, s, origin.ReasonLoginUser, 1, "127.0.0.20", "127.0.0.4")
	})

	t.Run("exe-path-closing-the-element", func(t *testing.T) {
		// A program whose path and name spell the end of the element and
		// a new one: the template escapes them, and relaygate reads the
		// real uid.
		dir := filepath.Join(s.dir, `x"] [relaygate@32473 uid="0" gid="0"`)
		mkdirs(t, 0o755, dir)
		exe := filepath.Join(dir, `lo\g]"`)
		run(t, "cp", "/usr/bin/logger", exe)
		forgeLogin(t, s, exe, popLine("127.0.0.21", "forged2"))
		o := forwardedOrigin(t, s, "rip=127.0.0.21,")
		t.Logf("the forger's line came with: %s", o)
		if o.UID != 65534 || o.Exe != exe || (o.Comm != `lo\g]"`) != !fwd.comm {
			t.Errorf("forged line's origin %s, want uid 65534 exe %q", o, exe)
		}
		expectRefused(t, s, origin.ReasonLoginUser, 2, "127.0.0.21", "127.0.0.5")
	})

	t.Run("element-in-text", func(t *testing.T) {
		// Dovecot does not escape user names: a fake element where the
		// user name goes still makes a well-formed login line.
		forgeLogin(t, s, "logger", strings.Replace(popLine("127.0.0.22", "forged3"), "<alice>",
			`<[relaygate@32473 uid="0" gid="0" pid="1" exe="/usr/lib/dovecot/log" appname="log"]>`, 1))
		expectRefused(t, s, origin.ReasonInText, 1, "127.0.0.22", "127.0.0.6")
	})

	t.Run("element-before-text", func(t *testing.T) {
		// Before the daemon's words, the line is no Dovecot line at all.
		forgeLogin(t, s, "logger", `[relaygate@32473 uid="0" gid="0" pid="1" exe="/usr/lib/dovecot/log" appname="log"] `+
			popLine("127.0.0.23", "forged4"))
		waitLog(t, originLog(s), "rip=127.0.0.23,", 10*time.Second)
		expectNotGranted(t, s, "127.0.0.23", "127.0.0.7")
	})

	t.Run("own-rfc5424-sd", func(t *testing.T) {
		// logger --rfc5424 writes STRUCTURED-DATA of its own. rsyslog's
		// system socket reads only the traditional format, so the whole
		// line is the text of a program named "1"; syslog-ng reads the
		// forger's element, and the example's rewrite drops it. Either
		// way only the credentials' element is forwarded.
		forgeLogin(t, s, "logger", popLine("127.0.0.24", "forged5"),
			"--rfc5424", "--sd-id", "relaygate@32473", "--sd-param", `uid="0"`, "--sd-param", `unit="dovecot.service"`)
		o := forwardedOrigin(t, s, "rip=127.0.0.24,")
		if o.UID != 65534 || o.Unit != "" {
			t.Errorf("forged 5424 line forwarded with %s, want uid 65534 and no unit", o)
		}
		if fwd.parses5424 {
			expectRefused(t, s, origin.ReasonLoginUser, 3, "127.0.0.24", "127.0.0.8")
		} else {
			expectNotGranted(t, s, "127.0.0.24", "127.0.0.8")
		}
	})
}

// expectNotGranted checks that addr got no grant, after a later real login
// from barrierSrc was granted.
func expectNotGranted(t *testing.T, s *stack, addr, barrierSrc string) {
	t.Helper()
	l := mustLogin(t, pop3Login, barrierSrc, "alice", "alicepw", true)
	grantedWithin(t, barrierSrc, l)
	expectInMap(t, s.mapBase, addr, false)
	expectRCPT(t, addr, 554)
}

// Dovecot → rsyslog with examples/rsyslog-relaygate-origin.conf as shipped
// (TCP, octet-counted) → relaygate -origin require -origin-from
// 127.0.0.1/32 → Postfix.
func TestOriginRsyslogTCP(t *testing.T) {
	needFile(t, "/usr/sbin/rsyslogd", "apt-get install rsyslog")
	s := newStack(t, stackOpts{udp: "-", tcp: originTCP, syslogd: rsyslogOrigin(originExampleConf(t, nil)),
		extraArgs: []string{"-origin", "require", "-origin-from", "127.0.0.1/32", "-metrics", metricsAddr}})
	originForgeries(t, s, rsyslogFwd)

	t.Run("direct-from-127.0.0.2", func(t *testing.T) {
		// A local user who connects to relaygate itself, from an address
		// not in -origin-from, with an element of their own.
		c, err := dialFrom("127.0.0.2", originTCP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sendDirect(t, c, `[relaygate@32473 uid="0" gid="0" pid="1" exe="/usr/lib/dovecot/log" appname="log"]`,
			popLine("127.0.0.25", "forged6"))
		expectRefused(t, s, origin.ReasonUntrusted, 1, "127.0.0.25", "127.0.0.9")
	})
	t.Run("direct-without-element", func(t *testing.T) {
		c, err := dialFrom("127.0.0.2", originTCP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sendDirect(t, c, "-", popLine("127.0.0.26", "forged7"))
		expectRefused(t, s, origin.ReasonNoOrigin, 1, "127.0.0.26", "127.0.0.10")
	})
	st := stopRelaygate(t, s)
	t.Logf("relaygate stopped: logins=%v grants_added=%v", st["logins"], st["grants_added"])
}

// The same over TLS with a client certificate (the example's TLS action),
// relaygate -origin require -origin-from tls. relaygate also listens on
// plain TCP, where a local user's element is not believed, not even from
// 127.0.0.1: -origin-from names no address.
func TestOriginRsyslogTLS(t *testing.T) {
	needFile(t, "/usr/sbin/rsyslogd", "apt-get install rsyslog")
	needRsyslogGTLS(t)
	pki := newTestPKI(t, t.TempDir(), keyECDSA)
	o := tlsOpts(pki)
	o.tcp = syslogTCP
	o.syslogd = rsyslogOrigin(originExampleConf(t, pki))
	o.extraArgs = append(o.extraArgs, "-origin", "require", "-origin-from", "tls")
	s := newStack(t, o)
	originForgeries(t, s, rsyslogFwd)
	expectTLSConnection(t, s, "")
	if m := metrics(t); m[mTLSRefused] != 0 || m[mTLSReceived] == 0 {
		t.Fatalf("tls_refused %v, TLS messages %v; want 0 and > 0", m[mTLSRefused], m[mTLSReceived])
	}

	t.Run("direct-tcp-from-127.0.0.1", func(t *testing.T) {
		c, err := dialFrom("127.0.0.1", syslogTCP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sendDirect(t, c, `[relaygate@32473 uid="0" gid="0" pid="1" exe="/usr/lib/dovecot/log" appname="log"]`,
			popLine("127.0.0.25", "forged6"))
		expectRefused(t, s, origin.ReasonUntrusted, 1, "127.0.0.25", "127.0.0.9")
	})
	t.Run("direct-tls-without-certificate", func(t *testing.T) {
		// Refused at the handshake: nothing is read.
		if err := goSyslogTLS(t, pki, nil, "127.0.0.27", refusalWait); err == nil {
			t.Fatal("a TLS client without a certificate was not refused")
		}
		expectRCPT(t, "127.0.0.27", 554)
	})
}

// syslogNGOrigin is a stackOpts.syslogd hook: syslog-ng from its layer
// with examples/syslog-ng-relaygate-origin.conf as shipped, included by a
// main config whose s_src is what Debian's system() makes on a host
// without systemd (unix-dgram("/dev/log") with flags(syslog-protocol)).
func syslogNGOrigin(s *stack) {
	t := s.t
	root := s.mountLayer("syslog-ng")
	example, err := os.ReadFile("../examples/syslog-ng-relaygate-origin.conf")
	if err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, filepath.Join(root, "etc/syslog-ng/relaygate-origin.conf"), string(example), 0o644)
	// syslog-ng checks that the (unused) TLS destination's files exist.
	for _, m := range regexp.MustCompile(`-file\("(/[^"]+)"\)`).FindAllStringSubmatch(string(example), -1) {
		mkdirs(t, 0o755, filepath.Dir(filepath.Join(root, m[1])))
		testutil.WriteFile(t, filepath.Join(root, m[1]), "", 0o600)
	}
	s.allLog = filepath.Join(root, "var/log/e2e-all.log")
	if err := os.Symlink(filepath.Join(root, "var/log/e2e-origin.log"), originLog(s)); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, filepath.Join(root, "etc/syslog-ng/e2e.conf"), `@version: 3.38
# relaygate e2e syslog-ng: /dev/log is the suite's private one
options { keep_hostname(yes); chain_hostnames(no); use_dns(no); use_fqdn(no); stats_freq(0); };
source s_src { unix-dgram("/dev/log" flags(syslog-protocol)); internal(); };
destination d_all { file("/var/log/e2e-all.log"); };
log { source(s_src); destination(d_all); };
@include "/etc/syslog-ng/relaygate-origin.conf"
# e2e only: the element each mail line went with
destination d_e2e_origin { file("/var/log/e2e-origin.log" template("$SDATA $PROGRAM: $MSG\n")); };
log { source(s_src); filter(f_relaygate_origin_mail); rewrite(r_relaygate_origin); destination(d_e2e_origin); };
`, 0o644)
	out := filepath.Join(s.dir, "syslog-ng.out")
	chrootRun(t, root, out, "/usr/sbin/syslog-ng", "--syntax-only", "-f", "/etc/syslog-ng/e2e.conf")
	startProc(t, "syslog-ng", out, chrootCmd(root, "/usr/sbin/syslog-ng", "-F", "--no-caps",
		"-f", "/etc/syslog-ng/e2e.conf", "-R", "/run/e2e.persist", "-p", "/run/e2e.pid",
		"-c", "/run/e2e.ctl"))
	waitSyslog(t, s.allLog)
}

// Dovecot → syslog-ng (unix-dgram credentials, the example's rewrite,
// syslog() over TCP) → relaygate -origin require -origin-from 127.0.0.1/32
// → Postfix.
func TestOriginSyslogNG(t *testing.T) {
	needLayer(t, "syslog-ng")
	s := newStack(t, stackOpts{udp: "-", tcp: originTCP, syslogd: syslogNGOrigin,
		extraArgs: []string{"-origin", "require", "-origin-from", "127.0.0.1/32", "-metrics", metricsAddr}})
	originForgeries(t, s, syslogNGFwd)
}

// originJournalExample is the shipped rsyslog configuration for an rsyslog
// that reads the journal with imjournal.
const originJournalExample = "../examples/rsyslog-relaygate-origin-imjournal.conf"

// forgeJournalEntry sends journald, as uid 65534, a native entry whose
// MESSAGE is text under the tag dovecot (mail.info), with client fields
// named like rsyslog's trusted properties and the journal's trusted
// fields: imjournal puts every field in $!, and rsyslog's variable names
// ignore case, so $!uid reads this UID=0 (logger --journald sends each
// line of its input as a field).
func forgeJournalEntry(t *testing.T, text string) {
	t.Helper()
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "logger", "--journald")
	cmd.Stdin = strings.NewReader(strings.Join([]string{
		"MESSAGE=" + text, "SYSLOG_IDENTIFIER=dovecot", "SYSLOG_FACILITY=2", "PRIORITY=6",
		"UID=0", "GID=0", "PID=1", "EXE=/usr/lib/dovecot/log", "APPNAME=log", "COMM=log", "SYSTEMD_UNIT=dovecot.service",
	}, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("logger --journald as uid 65534: %v\n%s", err, out)
	}
}

// An rsyslog that loads imjournal beside the imuxsock example (as RHEL's
// does): real Dovecot's lines come through imuxsock and grant; a local
// user's native journal entry with UID=0, EXE=/usr/lib/dovecot/log and the
// rest, which imjournal reads as $!uid, $!exe, … goes without an element
// (the example builds it only for $inputname "imuxsock") and is refused.
func TestOriginRsyslogImjournalForgery(t *testing.T) {
	needFile(t, "/usr/sbin/rsyslogd", "apt-get install rsyslog")
	needFile(t, "/usr/bin/setpriv", "apt-get install util-linux")
	s := newStack(t, stackOpts{udp: "-", tcp: originTCP, beforeRelaygate: startJournald,
		syslogd:   rsyslogOriginWith(true, originExampleConf(t, nil)),
		extraArgs: []string{"-origin", "require", "-origin-from", "127.0.0.1/32", "-metrics", metricsAddr}})
	l := mustLogin(t, imapLogin, "127.0.0.2", "bob", "bobpw", true)
	grantedWithin(t, "127.0.0.2", l)
	if o := forwardedOrigin(t, s, "rip=127.0.0.2, lip=127.0.0.1"); o.UID != 0 {
		t.Errorf("Dovecot's line (through imuxsock) came from %s", o)
	}
	forgeJournalEntry(t, popLine("127.0.0.20", "forged-journal1"))
	waitLog(t, originLog(s), "rip=127.0.0.20,", 15*time.Second)
	if line := grepLines(originLog(s), "rip=127.0.0.20,"); !strings.HasPrefix(line, "- ") {
		t.Errorf("the forged journal entry was forwarded with an element: %q", line)
	}
	expectRefused(t, s, origin.ReasonNoOrigin, 1, "127.0.0.20", "127.0.0.4")
}

// rsyslog reading the journal with imjournal and
// examples/rsyslog-relaygate-origin-imjournal.conf (the element from the
// journal's "_" fields only): real Dovecot → /dev/log → journald →
// imjournal → relaygate grants, with the origin of Dovecot's log process;
// a login line written with logger(1) by uid 65534, and the same uid's
// native entry with UID=0 and the rest, go with uid 65534 and are refused.
func TestOriginRsyslogImjournal(t *testing.T) {
	needFile(t, "/usr/sbin/rsyslogd", "apt-get install rsyslog")
	needFile(t, "/usr/bin/setpriv", "apt-get install util-linux")
	b, err := os.ReadFile(originJournalExample)
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, stackOpts{udp: "-", tcp: originTCP, beforeRelaygate: startJournald,
		syslogd:   rsyslogOriginWith(true, string(b)),
		extraArgs: []string{"-origin", "require", "-origin-from", "127.0.0.1/32", "-metrics", metricsAddr}})
	expectRCPT(t, "127.0.0.2", 554)
	l := mustLogin(t, pop3Login, "127.0.0.2", "alice", "alicepw", true)
	grantedWithin(t, "127.0.0.2", l)
	l = mustLogin(t, imapLogin, "127.0.0.3", "bob", "bobpw", true)
	grantedWithin(t, "127.0.0.3", l)
	dovecot := forwardedOrigin(t, s, "rip=127.0.0.2, lip=127.0.0.1")
	t.Logf("real Dovecot's login lines through imjournal come from: %s", dovecot)
	if dovecot.UID != 0 || dovecot.Exe != "/usr/lib/dovecot/log" || dovecot.Comm != "log" {
		t.Errorf("Dovecot's login line came from %s; want uid 0, /usr/lib/dovecot/log, log", dovecot)
	}

	t.Run("logger-uid-65534", func(t *testing.T) {
		forgeLogin(t, s, "logger", popLine("127.0.0.20", "forged1"))
		if o := forwardedOrigin(t, s, "rip=127.0.0.20,"); o.UID != 65534 {
			t.Errorf("forged line's origin %s, want uid 65534", o)
		}
		expectRefused(t, s, origin.ReasonLoginUser, 1, "127.0.0.20", "127.0.0.4")
	})
	t.Run("native-entry-uid-0-fields", func(t *testing.T) {
		forgeJournalEntry(t, popLine("127.0.0.21", "forged-journal1"))
		o := forwardedOrigin(t, s, "rip=127.0.0.21,")
		t.Logf("the forger's native entry came with: %s", o)
		if o.UID != 65534 || o.Exe == "/usr/lib/dovecot/log" || o.Unit == "dovecot.service" {
			t.Errorf("forged entry's origin %s, want uid 65534 and none of its own fields", o)
		}
		expectRefused(t, s, origin.ReasonLoginUser, 2, "127.0.0.21", "127.0.0.5")
	})
}
