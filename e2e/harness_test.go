//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

// Fixed ports: every test runs alone in the suite's private network
// namespace and stops its daemons before the next test starts.
const (
	smtpAddr   = "127.0.0.1:2525"
	pop3Addr   = "127.0.0.1:110"
	imapAddr   = "127.0.0.1:143"
	syslogUDP  = "127.0.0.1:5514"
	syslogTCP  = "127.0.0.1:5515"
	relayRCPT  = "someone@example.net"
	deniedText = "Relay access denied"
)

// ---------------------------------------------------------------------------
// prerequisites

// need fails (CI=true) or skips the test when a prerequisite is missing.
func need(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if testutil.InCI() {
		t.Fatalf("missing prerequisite (CI=true makes this a failure): %s", msg)
	}
	t.Skipf("missing prerequisite: %s", msg)
}

func needFile(t *testing.T, path, what string) {
	t.Helper()
	_, err := os.Stat(path)
	need(t, err == nil, "%s not found at %s (%s)", filepath.Base(path), path, what)
}

// needHostDaemons checks the packages the Dovecot scenarios use.
func needHostDaemons(t *testing.T) {
	t.Helper()
	needFile(t, "/usr/sbin/rsyslogd", "apt-get install rsyslog")
	needPostfix(t)
	needFile(t, "/usr/sbin/dovecot", "apt-get install dovecot-pop3d dovecot-imapd")
	needFile(t, "/usr/lib/dovecot/pop3-login", "apt-get install dovecot-pop3d")
	needFile(t, "/usr/lib/dovecot/imap-login", "apt-get install dovecot-imapd")
}

func needPostfix(t *testing.T) {
	t.Helper()
	needFile(t, "/usr/sbin/postfix", "apt-get install postfix")
	needFile(t, "/usr/lib/postfix/sbin/master", "apt-get install postfix")
	out, _ := exec.Command("postconf", "-m").Output()
	need(t, bytes.Contains(out, []byte("cdb")), "Postfix has no cdb map type (apt-get install postfix-cdb)")
}

// ---------------------------------------------------------------------------
// per-test directory

var testSeq atomic.Int32

// testDir makes a short, world-traversable directory for one test. Short,
// because Dovecot and Postfix put unix sockets below it.
func testDir(t *testing.T) string {
	t.Helper()
	name := strings.NewReplacer("/", "-", "Test", "").Replace(t.Name())
	if len(name) > 24 {
		name = name[:24]
	}
	d := filepath.Join(suiteRoot, fmt.Sprintf("%02d-%s", testSeq.Add(1), name))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if os.Getenv(envKeep) == "1" {
			return
		}
		if m := mountsUnder(d); len(m) > 0 {
			t.Errorf("still mounted under %s, not removing it: %v", d, m)
			return
		}
		if err := os.RemoveAll(d); err != nil {
			t.Errorf("cleanup %s: %v", d, err)
		}
	})
	// Runs before the removal above and after every daemon's own cleanup.
	t.Cleanup(func() { checkNoStrayProcesses(t) })
	return d
}

// mountsUnder lists the mount points at or below dir in this namespace.
func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

func mkdirs(t *testing.T, mode os.FileMode, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ---------------------------------------------------------------------------
// processes

// proc is a daemon the test started; it is stopped by PID.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// startProc starts cmd with stdout and stderr going to logPath and
// registers a cleanup that stops it (SIGTERM, then SIGKILL after 10 s).
func startProc(t *testing.T, name, logPath string, cmd *exec.Cmd) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	f.Close()
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t, syscall.SIGTERM, 10*time.Second) })
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the process and waits for it to exit; after timeout it
// sends SIGKILL. It returns the exit error (nil for exit status 0).
func (p *proc) stop(t *testing.T, sig syscall.Signal, timeout time.Duration) error {
	t.Helper()
	if p.exited() {
		return p.err
	}
	start := time.Now()
	defer func() {
		if d := time.Since(start); d > 2*time.Second {
			t.Logf("note: stopping %s (pid %d) with %v took %v", p.name, p.pid(), sig, d.Round(time.Millisecond))
		}
	}()
	timeout = max(timeout, 30*time.Second) // a hang guard: a loaded machine's daemons stop slowly
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		t.Errorf("%s (pid %d) did not exit %v after %v; killing it", p.name, p.pid(), sig, timeout)
		_ = p.cmd.Process.Kill()
		<-p.done
		return p.err
	}
}

// killPIDFile stops a daemon that detached itself, by the PID in its pid
// file, and waits until the PID is gone (the namespace's init reaps it).
func killPIDFile(t *testing.T, name, pidFile string, timeout time.Duration) {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Errorf("%s: reading pid file: %v", name, err)
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Errorf("%s: bad pid file %s: %q", name, pidFile, b)
		return
	}
	killPID(t, name, pid, timeout)
}

func killPID(t *testing.T, name string, pid int, timeout time.Duration) {
	t.Helper()
	timeout = max(timeout, 30*time.Second) // a hang guard, as in proc.stop
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return // already gone
	}
	start := time.Now()
	defer func() {
		if d := time.Since(start); d > 2*time.Second {
			t.Logf("note: stopping %s (pid %d) took %v", name, pid, d.Round(time.Millisecond))
		}
	}()
	deadline := time.Now().Add(timeout)
	for pidAlive(pid) {
		if time.Now().After(deadline) {
			t.Errorf("%s (pid %d) still running %v after SIGTERM; killing it", name, pid, timeout)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(5 * time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pidAlive: a zombie counts as gone (init reaps it a moment later).
func pidAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// ---------------------------------------------------------------------------
// waiting

// waitLog waits until the file at path contains s.
func waitLog(t *testing.T, path, s string, timeout time.Duration) {
	t.Helper()
	timeout = hangGuard(timeout)
	if _, ok := testutil.Poll(timeout, 20*time.Millisecond, func() bool { return testutil.FileContains(path, s) }); !ok {
		t.Fatalf("%q did not appear in %s within %v", s, path, timeout)
	}
}

// startupWait bounds how long the suite waits for a daemon it started
// (relaygate, rsyslog, tcpserver, Courier, nats-server) to be ready: a
// hang guard, since a loaded machine starts them slowly.
const startupWait = 60 * time.Second

// strictLatency says whether the run fails on the suite's latency
// bounds (RELAYGATE_E2E_STRICT_LATENCY=1), which otherwise it only logs:
// see docs/E2E.md.
func strictLatency() bool { return os.Getenv("RELAYGATE_E2E_STRICT_LATENCY") == "1" }

// atOnce logs how long something meant to happen at once took, and fails
// the test if that is over bound in a strict run; in any other run over
// bound is logged as slow.
func atOnce(t *testing.T, what string, took, bound time.Duration) {
	t.Helper()
	t.Logf("FIGURE %s: %v", what, took.Round(time.Millisecond))
	switch {
	case took <= bound:
	case strictLatency():
		t.Fatalf("%s took %v, over %v", what, took, bound)
	default:
		t.Logf("slow: %s took %v, over %v (not failed: set RELAYGATE_E2E_STRICT_LATENCY=1 to fail on it)", what, took, bound)
	}
}

// hangGuard is how long the wait helpers (waitLog, waitRCPT, …) wait
// before failing a test: what the caller asked, or testutil.EventuallyFloor
// if that is longer. A shared CI machine can stall the real daemons for
// seconds with nothing wrong; a test that means a bound checks the time
// the helper returns.
func hangGuard(asked time.Duration) time.Duration { return max(asked, testutil.EventuallyFloor) }

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------------------
// clients

// dialFrom opens a TCP connection from the loopback address src.
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c, nil
}

// smtpResult is Postfix's answer to RCPT TO.
type smtpResult struct {
	Code int
	Text string
}

func (r smtpResult) String() string { return fmt.Sprintf("%d %s", r.Code, r.Text) }

// smtpRCPT speaks plain SMTP from src up to RCPT TO:<someone@example.net>
// and returns the reply to RCPT.
func smtpRCPT(src string) (smtpResult, error) {
	c, err := dialFrom(src, smtpAddr)
	if err != nil {
		return smtpResult{}, err
	}
	defer c.Close()
	tp := textproto.NewConn(c)
	step := func(cmd string, want int) error {
		if cmd != "" {
			if err := tp.PrintfLine("%s", cmd); err != nil {
				return err
			}
		}
		code, msg, err := tp.ReadResponse(want)
		if err != nil {
			return fmt.Errorf("after %q: %d %s: %w", cmd, code, msg, err)
		}
		return nil
	}
	if err := step("", 220); err != nil {
		return smtpResult{}, err
	}
	if err := step("EHLO client.pbs.test", 250); err != nil {
		return smtpResult{}, err
	}
	if err := step("MAIL FROM:<alice@pbs.test>", 250); err != nil {
		return smtpResult{}, err
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

// expectRCPT asserts one RCPT answer.
func expectRCPT(t *testing.T, src string, code int) smtpResult {
	t.Helper()
	r, err := smtpRCPT(src)
	if err != nil {
		t.Fatalf("SMTP from %s: %v", src, err)
	}
	if r.Code != code {
		t.Fatalf("RCPT TO:<%s> from %s: got %q, want %d", relayRCPT, src, r, code)
	}
	if code == 554 && !strings.Contains(r.Text, deniedText) {
		t.Fatalf("RCPT TO:<%s> from %s: got %q, want %q", relayRCPT, src, r, deniedText)
	}
	return r
}

// waitRCPT opens new SMTP sessions from src until RCPT gets code (an open
// session keeps the table it started with). It returns the moment the
// answer arrived.
func waitRCPT(t *testing.T, src string, code int, timeout time.Duration) time.Time {
	t.Helper()
	timeout = hangGuard(timeout)
	var last smtpResult
	var lastErr error
	at, ok := testutil.Poll(timeout, 10*time.Millisecond, func() bool {
		last, lastErr = smtpRCPT(src)
		return lastErr == nil && last.Code == code
	})
	if !ok {
		t.Fatalf("RCPT from %s: no %d within %v; last answer %q, err %v", src, code, timeout, last, lastErr)
	}
	return at
}

// loginResult is the outcome of one POP3/IMAP login.
type loginResult struct {
	OK     bool
	Sent   time.Time // PASS / LOGIN written
	Answer time.Time // reply read
	Reply  string
}

// pop3Login logs in with USER/PASS from src, then QUITs.
func pop3Login(src, user, pass string) (loginResult, error) {
	c, err := dialFrom(src, pop3Addr)
	if err != nil {
		return loginResult{}, err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	line := func() (string, error) {
		s, err := r.ReadString('\n')
		return strings.TrimRight(s, "\r\n"), err
	}
	if s, err := line(); err != nil || !strings.HasPrefix(s, "+OK") {
		return loginResult{}, fmt.Errorf("POP3 greeting %q: %v", s, err)
	}
	fmt.Fprintf(c, "USER %s\r\n", user)
	if s, err := line(); err != nil || !strings.HasPrefix(s, "+OK") {
		return loginResult{}, fmt.Errorf("POP3 USER: %q: %v", s, err)
	}
	res := loginResult{Sent: time.Now()}
	fmt.Fprintf(c, "PASS %s\r\n", pass)
	s, err := line()
	res.Answer = time.Now()
	if err != nil {
		return res, fmt.Errorf("POP3 PASS: %v", err)
	}
	res.Reply, res.OK = s, strings.HasPrefix(s, "+OK")
	fmt.Fprintf(c, "QUIT\r\n")
	_, _ = line()
	return res, nil
}

// imapLogin logs in with LOGIN from src, then LOGs OUT.
func imapLogin(src, user, pass string) (loginResult, error) {
	c, err := dialFrom(src, imapAddr)
	if err != nil {
		return loginResult{}, err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	line := func() (string, error) {
		s, err := r.ReadString('\n')
		return strings.TrimRight(s, "\r\n"), err
	}
	tagged := func(tag string) (string, error) {
		for {
			s, err := line()
			if err != nil {
				return s, err
			}
			if strings.HasPrefix(s, tag+" ") {
				return s, nil
			}
		}
	}
	if s, err := line(); err != nil || !strings.HasPrefix(s, "* OK") {
		return loginResult{}, fmt.Errorf("IMAP greeting %q: %v", s, err)
	}
	res := loginResult{Sent: time.Now()}
	fmt.Fprintf(c, "a1 LOGIN %s %s\r\n", user, pass)
	s, err := tagged("a1")
	res.Answer = time.Now()
	if err != nil {
		return res, fmt.Errorf("IMAP LOGIN: %q: %v", s, err)
	}
	res.Reply, res.OK = s, strings.HasPrefix(s, "a1 OK")
	fmt.Fprintf(c, "a2 LOGOUT\r\n")
	_, _ = tagged("a2")
	return res, nil
}

type loginFunc func(src, user, pass string) (loginResult, error)

// mustLogin performs a login that must succeed (or, with ok=false, fail).
func mustLogin(t *testing.T, login loginFunc, src, user, pass string, ok bool) loginResult {
	t.Helper()
	r, err := login(src, user, pass)
	if err != nil {
		t.Fatalf("login %s from %s: %v", user, src, err)
	}
	if r.OK != ok {
		t.Fatalf("login %s from %s: reply %q, want success=%v", user, src, r.Reply, ok)
	}
	return r
}

// waitGreeting waits until a server on addr sends its greeting.
func waitGreeting(t *testing.T, name, addr, prefix string, timeout time.Duration) {
	t.Helper()
	timeout = hangGuard(timeout)
	var last string
	_, ok := testutil.Poll(timeout, 50*time.Millisecond, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			last = err.Error()
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		s, err := bufio.NewReader(c).ReadString('\n')
		last = s
		return err == nil && strings.HasPrefix(s, prefix)
	})
	if !ok {
		t.Fatalf("%s on %s: no %q greeting within %v (last: %q)", name, addr, prefix, timeout, last)
	}
}

func portOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// ---------------------------------------------------------------------------
// map checks

// postmapQuery looks ip up in cdb:<mapBase> with the real postmap and the
// suite's own main.cf (the host's may not exist).
func postmapQuery(t *testing.T, mapBase, ip string) (string, bool) {
	t.Helper()
	return testutil.PostmapQuery(t, filepath.Join(filepath.Dir(filepath.Dir(mapBase)), "postfix", "etc"), mapBase, ip)
}

func expectInMap(t *testing.T, mapBase, ip string, want bool) {
	t.Helper()
	v, ok := postmapQuery(t, mapBase, ip)
	if ok != want {
		t.Fatalf("postmap -q %s cdb:%s: found=%v (value %q), want found=%v", ip, mapBase, ok, v, want)
	}
}
