//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

// Scenario 10 (issue 15): the MTAs other than Postfix. Each test runs the
// usual chain (real Dovecot logins → rsyslog → relaygate) with Postfix as
// usual, plus one more MTA reading what relaygate writes for it: qmail's
// tcpserver (host package ucspi-tcp), Exim, OpenSMTPD and sendmail (each
// from its layer, chrooted: they conflict with Postfix as packages).
// Granted clients may relay, others are refused, and the file is replaced
// while connections keep coming: none of them sees a broken file.

const (
	tcpserverAddr = "127.0.0.1:2600"
	eximAddr      = "127.0.0.1:2527"
	smtpdAddr     = "127.0.0.1:2528"
	sendmailAddr  = "127.0.0.1:2529"
	// The directory the chrooted MTAs see relaygate's directory at.
	chrootMapDir = "/var/lib/relaygate"
)

// rcptAt speaks SMTP from src to addr up to RCPT TO:<someone@example.net>
// and returns the reply to RCPT.
func rcptAt(addr, src string) (smtpResult, error) {
	c, err := dialFrom(src, addr)
	if err != nil {
		return smtpResult{}, err
	}
	defer c.Close()
	tp := textproto.NewConn(c)
	for _, step := range []struct {
		cmd  string
		want int
	}{{"", 220}, {"EHLO client.pbs.test", 250}, {"MAIL FROM:<alice@pbs.test>", 250}} {
		if step.cmd != "" {
			if err := tp.PrintfLine("%s", step.cmd); err != nil {
				return smtpResult{}, err
			}
		}
		if code, msg, err := tp.ReadResponse(step.want); err != nil {
			return smtpResult{}, fmt.Errorf("after %q: %d %s: %w", step.cmd, code, msg, err)
		}
	}
	if err := tp.PrintfLine("RCPT TO:<%s>", relayRCPT); err != nil {
		return smtpResult{}, err
	}
	code, msg, err := tp.ReadResponse(0)
	if err != nil && code == 0 {
		return smtpResult{}, err
	}
	_ = tp.PrintfLine("QUIT")
	_, _, _ = tp.ReadResponse(221)
	return smtpResult{Code: code, Text: msg}, nil
}

// waitRcptAt opens new sessions until RCPT from src gets code.
func waitRcptAt(t *testing.T, mta, addr, src string, code int, timeout time.Duration) {
	t.Helper()
	timeout = hangGuard(timeout)
	var last smtpResult
	var lastErr error
	if _, ok := testutil.Poll(timeout, 20*time.Millisecond, func() bool {
		last, lastErr = rcptAt(addr, src)
		return lastErr == nil && last.Code == code
	}); !ok {
		t.Fatalf("%s: RCPT from %s: no %d within %v; last answer %q, err %v", mta, src, code, timeout, last, lastErr)
	}
}

// expectRcptAt asserts one answer: the code's first digit (5 for any
// refusal, whatever the MTA's own code).
func expectRcptAt(t *testing.T, mta, addr, src string, class int) smtpResult {
	t.Helper()
	r, err := rcptAt(addr, src)
	if err != nil {
		t.Fatalf("%s: SMTP from %s: %v", mta, src, err)
	}
	if r.Code/100 != class {
		t.Fatalf("%s: RCPT TO:<%s> from %s: got %q, want %dxx", mta, relayRCPT, src, r, class)
	}
	t.Logf("%s: RCPT from %s: %s", mta, src, r)
	return r
}

// outputWait is how long a test waits for an MTA to act on a grant that
// reaches it through one of relaygate's outputs (makedat, smtpctl update,
// Courier's makesmtpaccess): a failed write is retried with a back-off
// that reaches 30 s.
const outputWait = 60 * time.Second

// minProbes is the fewest probes a run under load must make.
const minProbes = 5

// underLoad runs probe in a loop on two goroutines until done is called,
// which returns how many probes ran; probes says how many have run so
// far. Any failed probe fails the test.
func underLoad(t *testing.T, what string, probe func() error) (probes func() int, done func() int) {
	t.Helper()
	var (
		stop   atomic.Bool
		n      atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []string
	)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if err := probe(); err != nil {
					mu.Lock()
					failed = append(failed, err.Error())
					mu.Unlock()
				}
				n.Add(1)
			}
		}()
	}
	probes = func() int { return int(n.Load()) }
	done = func() int {
		t.Helper()
		stop.Store(true)
		wg.Wait()
		if len(failed) > 0 {
			t.Errorf("%s: %d of %d probes failed while the file was replaced, first: %s", what, len(failed), n.Load(), failed[0])
		}
		t.Logf("%s: %d probes while the file was replaced, none failed", what, n.Load())
		return int(n.Load())
	}
	return probes, done
}

// rewritesUnderLoad makes relaygate replace its files several times
// (POP3 logins from fresh addresses, each waited for in the Postfix map)
// while check keeps probing. If the scheduler ran fewer than minProbes
// probes among those rewrites, it makes more (logins from 127.0.3.x)
// until it has.
func rewritesUnderLoad(t *testing.T, s *stack, what string, probe func() error, srcs ...string) {
	t.Helper()
	probes, done := underLoad(t, what, probe)
	rewrite := func(src string) {
		mustLogin(t, pop3Login, src, "bob", "bobpw", true)
		testutil.Eventually(t, 5*time.Second, src+" in the map", func() bool {
			_, ok := postmapQuery(t, s.mapBase, src)
			return ok
		})
	}
	for _, src := range srcs {
		rewrite(src)
	}
	for i := 1; probes() < minProbes && i <= 50; i++ {
		rewrite(fmt.Sprintf("127.0.3.%d", i))
	}
	if done() < minProbes {
		t.Errorf("%s: too few probes to call it load", what)
	}
}

// bindMapDir makes relaygate's map directory visible in a chroot at
// chrootMapDir (Exim and sendmail refuse maps below /tmp's sticky,
// world-writable directory, and run as users that cannot walk the
// test directory).
func (s *stack) bindMapDir(root string) string {
	t := s.t
	dst := filepath.Join(root, chrootMapDir)
	mkdirs(t, 0o755, dst)
	if err := syscall.Mount(filepath.Dir(s.mapPath), dst, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s into the chroot: %v", filepath.Dir(s.mapPath), err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dst, 0); err != nil {
			_ = syscall.Unmount(dst, syscall.MNT_DETACH)
		}
	})
	return dst
}

// exampleBlock returns the lines of examples/NAME between the lines
// "# BEGIN relaygate" and "# END relaygate" ("dnl" for m4), with from
// replaced by to: the tests run the examples as shipped.
func exampleBlock(t *testing.T, name, from, to string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		switch strings.TrimPrefix(strings.TrimPrefix(l, "# "), "dnl ") {
		case "BEGIN relaygate":
			in = true
			continue
		case "END relaygate":
			in = false
		}
		if in {
			out = append(out, strings.ReplaceAll(l, from, to))
		}
	}
	if len(out) == 0 {
		t.Fatalf("examples/%s: no BEGIN relaygate ... END relaygate block", name)
	}
	return strings.Join(out, "\n") + "\n"
}

// ---------------------------------------------------------------------------
// qmail's tcpserver

// tcpserverSays connects from src and returns what the program tcpserver
// ran printed ("" when tcpserver refused the connection).
func tcpserverSays(src string) (string, error) {
	c, err := dialFrom(src, tcpserverAddr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	b, err := io.ReadAll(bufio.NewReader(c))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func expectTCPServer(t *testing.T, src, want string) {
	t.Helper()
	got, err := tcpserverSays(src)
	if err != nil || got != want {
		t.Fatalf("tcpserver from %s: %q (%v), want %q", src, got, err, want)
	}
}

// eventuallyTCPServer waits for tcpserver to say want from src: the
// tcprules cdb is written by its own goroutine after the Postfix map, so
// a grant seen in the map is not yet there.
func eventuallyTCPServer(t *testing.T, src, want string) {
	t.Helper()
	var got string
	var err error
	if _, ok := testutil.Poll(grantWait, 20*time.Millisecond, func() bool {
		got, err = tcpserverSays(src)
		return err == nil && got == want
	}); !ok {
		t.Fatalf("tcpserver from %s: %q (%v), want %q within %v", src, got, err, want, grantWait)
	}
}

// TestTCPServerRules: relaygate -tcprules writes the cdb real tcpserver -x
// reads, merged with a static tcp.smtp; a program run by tcpserver reports
// whether RELAYCLIENT is set.
func TestTCPServerRules(t *testing.T) {
	tcpserver := testutil.RequireProgram(t, "tcpserver", "apt-get install ucspi-tcp")
	odir := t.TempDir()
	static, rules := filepath.Join(odir, "tcp.smtp"), filepath.Join(odir, "tcp.smtp.cdb")
	testutil.WriteFile(t, static, `# the site's own rules
127.0.0.6:allow,RELAYCLIENT="",STATIC="yes"
127.0.0.7:deny
127.0.0.3:allow,STATIC="no-relay"
127.0.1.:allow,STATIC="net"
127.0.2.:deny
:allow
`, 0o644)
	s := newStack(t, stackOpts{extraArgs: []string{"-tcprules", rules, "-tcprules-static", static}})
	report := `echo "relay=${RELAYCLIENT+set} static=${STATIC-}"`
	p := startProc(t, "tcpserver", filepath.Join(s.dir, "tcpserver.log"),
		exec.Command(tcpserver, "-v", "-R", "-H", "-l", "mail", "-x", rules, "127.0.0.1", "2600", "/bin/sh", "-c", report))
	if _, ok := testutil.Poll(startupWait, 20*time.Millisecond, func() bool { return portOpen(tcpserverAddr) }); !ok {
		t.Fatalf("tcpserver not listening: %v\n%s", p.err, tail(filepath.Join(s.dir, "tcpserver.log"), 20))
	}

	expectTCPServer(t, "127.0.0.2", "relay= static=")
	expectTCPServer(t, "127.0.0.6", "relay=set static=yes") // static rules work
	expectTCPServer(t, "127.0.0.7", "")                     // static deny

	mustLogin(t, pop3Login, "127.0.0.2", "alice", "alicepw", true)
	eventuallyTCPServer(t, "127.0.0.2", "relay=set static=")
	// A grant never overrides the site's rules: an address the file names
	// exactly keeps that rule's variables and gains RELAYCLIENT, so does an
	// address in a network with variables of its own; an address the file
	// denies, exactly or by its network, stays refused.
	for _, src := range []string{"127.0.0.3", "127.0.1.2", "127.0.0.7", "127.0.2.5"} {
		mustLogin(t, pop3Login, src, "alice", "alicepw", true)
		testutil.Eventually(t, 5*time.Second, src+" in the map", func() bool {
			_, ok := postmapQuery(t, s.mapBase, src)
			return ok
		})
	}
	// A barrier: once a later grant is in the cdb, so are the four above,
	// and a denial below is the rules' doing, not a cdb not yet written.
	mustLogin(t, pop3Login, "127.0.0.10", "alice", "alicepw", true)
	eventuallyTCPServer(t, "127.0.0.10", "relay=set static=")
	expectTCPServer(t, "127.0.0.3", "relay=set static=no-relay")
	expectTCPServer(t, "127.0.1.2", "relay=set static=net")
	expectTCPServer(t, "127.0.0.7", "")
	expectTCPServer(t, "127.0.2.5", "")
	expectTCPServer(t, "127.0.1.3", "relay= static=net") // the network, not granted
	expectTCPServer(t, "127.0.0.4", "relay= static=")
	waitLog(t, s.rgLog, "granted addresses left out of the tcprules cdb", grantWait)

	rewritesUnderLoad(t, s, "tcpserver", func() error {
		for _, c := range []struct{ src, want string }{{"127.0.0.6", "relay=set static=yes"}, {"127.0.0.2", "relay=set static="}} {
			if got, err := tcpserverSays(c.src); err != nil || got != c.want {
				return fmt.Errorf("from %s: %q (%v), want %q", c.src, got, err, c.want)
			}
		}
		return nil
	}, "127.0.0.4", "127.0.0.5", "127.0.0.8")
	eventuallyTCPServer(t, "127.0.0.8", "relay=set static=")
	if b, _ := os.ReadFile(filepath.Join(s.dir, "tcpserver.log")); strings.Contains(string(b), "unable to read") {
		t.Errorf("tcpserver could not read the rules at some point:\n%s", b)
	}
}

// ---------------------------------------------------------------------------
// Exim

const eximConf = `# relaygate e2e: Exim 4.96 relaying for granted clients
primary_hostname = mail.pbs.test
domainlist local_domains = pbs.test
domainlist relay_to_domains =
hostlist relay_from_hosts =
daemon_smtp_ports = 2527
local_interfaces = <; 127.0.0.1 ; ::1
host_lookup =
rfc1413_hosts =
log_file_path = /var/log/exim4/%slog
acl_smtp_rcpt = acl_check_rcpt

begin acl

acl_check_rcpt:
  accept  domains = +local_domains

  # examples/exim-relaygate.conf
EXAMPLE

  deny    message   = relay not permitted

begin routers

blackhole:
  driver = redirect
  data = :blackhole:
`

// startExim runs exim4 -bdf from the exim layer with eximConf.
func startExim(t *testing.T, s *stack) {
	root := s.mountLayer("exim")
	s.bindMapDir(root)
	acl := exampleBlock(t, "exim-relaygate.conf", "/var/lib/relaygate/pop-before-smtp.cdb", chrootMapDir+"/pbs.cdb")
	testutil.WriteFile(t, filepath.Join(root, "etc/exim4/exim4.conf"), strings.Replace(eximConf, "EXAMPLE\n", acl, 1), 0o644)
	out := filepath.Join(s.dir, "exim.out")
	chrootRun(t, root, out, "/usr/sbin/exim4", "-bV")
	startProc(t, "exim", out, chrootCmd(root, "/usr/sbin/exim4", "-bdf"))
	waitGreeting(t, "exim", eximAddr, "220 ", 15*time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- exim mainlog ----\n%s\n---- paniclog ----\n%s", tail(filepath.Join(root, "var/log/exim4/mainlog"), 30),
				tail(filepath.Join(root, "var/log/exim4/paniclog"), 10))
		}
	})
}

// TestEximRelay: Exim reads relaygate's own map (no output needed):
// granted clients relay, others are refused, a replaced map is read by
// the next connection without a reload, IPv6 keys match
// $sender_host_address.
func TestEximRelay(t *testing.T) {
	needLayer(t, "exim")
	s := newStack(t, stackOpts{})
	startExim(t, s)

	expectRcptAt(t, "exim", eximAddr, "127.0.0.2", 5)
	mustLogin(t, pop3Login, "127.0.0.2", "alice", "alicepw", true)
	waitRcptAt(t, "exim", eximAddr, "127.0.0.2", 250, 5*time.Second)
	expectRcptAt(t, "exim", eximAddr, "127.0.0.3", 5)

	// IPv6: a login line for fd00:1:2:3:4:5:6:7 sent to relaygate by hand
	// (Dovecot here listens on IPv4 only), then SMTP from there to Exim on
	// ::1. (An address whose Postfix key has "::" is never granted: Postfix
	// would match it against other clients' cut-back keys.)
	if err := exec.Command("ip", "-6", "addr", "add", "fd00:1:2:3:4:5:6:7/128", "dev", "lo", "nodad").Run(); err != nil {
		t.Fatalf("ip addr add fd00:1:2:3:4:5:6:7: %v", err)
	}
	ex6 := "[::1]:2527"
	expectRcptAt(t, "exim", ex6, "fd00:1:2:3:4:5:6:7", 5)
	c, err := net.Dial("udp", syslogUDP)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "<22>Nov 21 10:00:00 mail dovecot: imap-login: Login: user=<alice>, method=PLAIN, rip=fd00:1:2:3:4:5:6:7, lip=::1, mpid=1, session=<x6>")
	c.Close()
	waitRcptAt(t, "exim", ex6, "fd00:1:2:3:4:5:6:7", 250, 5*time.Second)

	rewritesUnderLoad(t, s, "exim", func() error {
		if r, err := rcptAt(eximAddr, "127.0.0.2"); err != nil || r.Code != 250 {
			return fmt.Errorf("granted 127.0.0.2: %v (%v)", r, err)
		}
		if r, err := rcptAt(eximAddr, "127.0.0.3"); err != nil || r.Code/100 != 5 {
			return fmt.Errorf("ungranted 127.0.0.3: %v (%v)", r, err)
		}
		return nil
	}, "127.0.0.4", "127.0.0.5", "127.0.0.8")
	expectRcptAt(t, "exim", eximAddr, "127.0.0.8", 2)
}

// ---------------------------------------------------------------------------
// OpenSMTPD

const smtpdConf = `# relaygate e2e: OpenSMTPD 6.8 relaying for granted clients
listen on 127.0.0.1 port 2528 hostname mail.pbs.test
action "local" mbox
action "relay" relay
match from local for local action "local"
`

// TestOpenSMTPDRelay: relaygate -opensmtpd-table writes a file: table and
// runs smtpctl update table; real smtpd's match from src <relaygate>
// relays for granted clients only.
func TestOpenSMTPDRelay(t *testing.T) {
	needLayer(t, "opensmtpd")
	s := newStack(t, stackOpts{beforeRelaygate: func(s *stack) {
		root := s.mountLayer("opensmtpd")
		s.bindMapDir(root)
		table := filepath.Join(filepath.Dir(s.mapPath), "opensmtpd-relay")
		s.rgArgs = append(s.rgArgs, "-opensmtpd-table", table,
			"-opensmtpd-update", "chroot "+root+" smtpctl update table relaygate")
		// smtpd needs its table at its start, before relaygate's first
		// write; the file relaygate then replaces. It holds no address,
		// only the "# @list" line relaygate writes first (an empty file
		// is taken for a mapping, which smtpd refuses for src).
		testutil.WriteFile(t, table, "# @list\n", 0o644)
		conf := smtpdConf + exampleBlock(t, "opensmtpd-relaygate.conf", "/var/lib/relaygate/", chrootMapDir+"/")
		testutil.WriteFile(t, filepath.Join(root, "etc/smtpd.conf"), conf, 0o644)
		out := filepath.Join(s.dir, "smtpd.out")
		chrootRun(t, root, out, "/usr/sbin/smtpd", "-n", "-f", "/etc/smtpd.conf")
		startProc(t, "smtpd", out, chrootCmd(root, "/usr/sbin/smtpd", "-d", "-f", "/etc/smtpd.conf"))
		waitGreeting(t, "smtpd", smtpdAddr, "220 ", 15*time.Second)
	}})

	expectRcptAt(t, "opensmtpd", smtpdAddr, "127.0.0.2", 5)
	mustLogin(t, pop3Login, "127.0.0.2", "alice", "alicepw", true)
	waitRcptAt(t, "opensmtpd", smtpdAddr, "127.0.0.2", 250, outputWait)
	expectRcptAt(t, "opensmtpd", smtpdAddr, "127.0.0.3", 5)

	rewritesUnderLoad(t, s, "opensmtpd", func() error {
		if r, err := rcptAt(smtpdAddr, "127.0.0.2"); err != nil || r.Code != 250 {
			return fmt.Errorf("granted 127.0.0.2: %v (%v)", r, err)
		}
		return nil
	}, "127.0.0.4", "127.0.0.5", "127.0.0.8")
	waitRcptAt(t, "opensmtpd", smtpdAddr, "127.0.0.8", 250, outputWait)
	expectRcptAt(t, "opensmtpd", smtpdAddr, "127.0.0.3", 5)
	if b, _ := os.ReadFile(s.rgLog); strings.Count(string(b), "output write succeeded again") == 0 && strings.Contains(string(b), "output write failed") {
		t.Errorf("the table update never recovered after smtpd started:\n%s", tail(s.rgLog, 20))
	}
}

// ---------------------------------------------------------------------------
// sendmail

// sendmailMC is examples/sendmail-relaygate.mc's rules in a minimal
// sendmail.mc for the test instance.
const sendmailMC = `divert(-1)
include(` + "`" + `/usr/share/sendmail/cf/m4/cf.m4')
divert(0)dnl
OSTYPE(` + "`" + `debian')dnl
define(` + "`" + `confDOMAIN_NAME', ` + "`" + `mail.pbs.test')dnl
define(` + "`" + `confDONT_PROBE_INTERFACES', ` + "`" + `true')dnl
define(` + "`" + `confDONT_BLAME_SENDMAIL', ` + "`" + `GroupReadableKeyFile')dnl
FEATURE(` + "`" + `nocanonify')dnl
FEATURE(` + "`" + `accept_unresolvable_domains')dnl
define(` + "`" + `confSERVICE_SWITCH_FILE', ` + "`" + `/etc/mail/relaygate-e2e.switch')dnl
DAEMON_OPTIONS(` + "`" + `Family=inet, Name=MTA, Port=2529, Addr=127.0.0.1')dnl
MAILER(` + "`" + `local')dnl
MAILER(` + "`" + `smtp')dnl
`

// TestSendmailRelay: relaygate -sendmail-map builds a hash map with
// sendmail's makemap (run chrooted into the layer through a wrapper in
// PATH) and renames it into place; real sendmail relays for granted
// clients only, opening the replaced map on the next connection.
func TestSendmailRelay(t *testing.T) {
	needLayer(t, "sendmail")
	var root string
	s := newStack(t, stackOpts{beforeRelaygate: func(s *stack) {
		root = s.mountLayer("sendmail")
		s.bindMapDir(root)
		bin := filepath.Join(s.dir, "bin")
		mkdirs(t, 0o755, bin)
		// relaygate runs makemap as "makemap hash <dir>/<tmp>": the same
		// directory is chrootMapDir in the chroot.
		testutil.WriteFile(t, filepath.Join(bin, "makemap"), "#!/bin/sh\nexec chroot "+root+" /usr/sbin/makemap \"$1\" "+chrootMapDir+"/\"${2##*/}\"\n", 0o755)
		s.rgArgs = append(s.rgArgs, "-sendmail-map", filepath.Join(filepath.Dir(s.mapPath), "sendmail-relay"))
		s.rgEnv = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	}})
	out := filepath.Join(s.dir, "sendmail.out")
	mc := sendmailMC + exampleBlock(t, "sendmail-relaygate.mc", "/var/lib/relaygate/", chrootMapDir+"/")
	testutil.WriteFile(t, filepath.Join(root, "etc/mail/relaygate-e2e.mc"), mc, 0o644)
	// No DNS in the namespace: a PTR lookup would be a temporary failure
	// (450 for every relay attempt); /etc/hosts alone answers at once.
	testutil.WriteFile(t, filepath.Join(root, "etc/mail/relaygate-e2e.switch"), "hosts files\naliases files\n", 0o644)
	testutil.WriteFile(t, filepath.Join(root, "etc/nsswitch.conf"), "passwd: files\ngroup: files\nhosts: files\n", 0o644)
	cmd := chrootCmd(root, "sh", "-c", "m4 /etc/mail/relaygate-e2e.mc > /etc/mail/relaygate-e2e.cf")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("m4: %v\n%s", err, b)
	}
	startProc(t, "sendmail", out, chrootCmd(root, "/usr/sbin/sendmail", "-bD", "-C", "/etc/mail/relaygate-e2e.cf", "-O", "LogLevel=14"))
	waitGreeting(t, "sendmail", sendmailAddr, "220 ", 30*time.Second)

	expectRcptAt(t, "sendmail", sendmailAddr, "127.0.0.2", 5)
	mustLogin(t, pop3Login, "127.0.0.2", "alice", "alicepw", true)
	waitRcptAt(t, "sendmail", sendmailAddr, "127.0.0.2", 250, outputWait)
	expectRcptAt(t, "sendmail", sendmailAddr, "127.0.0.3", 5)

	rewritesUnderLoad(t, s, "sendmail", func() error {
		if r, err := rcptAt(sendmailAddr, "127.0.0.2"); err != nil || r.Code != 250 {
			return fmt.Errorf("granted 127.0.0.2: %v (%v)", r, err)
		}
		return nil
	}, "127.0.0.4", "127.0.0.5")
	waitRcptAt(t, "sendmail", sendmailAddr, "127.0.0.5", 250, outputWait)
	expectRcptAt(t, "sendmail", sendmailAddr, "127.0.0.3", 5)
	// A map replaced by another file between sendmail's stat and its open
	// fails that connection's lookup ("db_map_open(...): file changed
	// after open"), even when no probe happened to meet it.
	if b, _ := os.ReadFile(s.allLog); strings.Contains(string(b), "file changed after open") {
		t.Errorf("sendmail found the map replaced under it:\n%s", tail(s.allLog, 20))
	}
}
