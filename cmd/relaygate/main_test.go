package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/cdbwriter"
)

// TestMain lets the test binary stand in for the relaygate binary, so the
// process-level tests (signals, kill -9) need no separate build.
func TestMain(m *testing.M) {
	if os.Getenv("RELAYGATE_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

const (
	dovecotLogin  = "<22>Nov 21 10:00:00 mx1 dovecot[812]: pop3-login: Login: user=<bob>, method=PLAIN, rip=%s, lip=192.0.2.1, mpid=1, session=<abc>"
	dovecotFailed = "<22>Nov 21 10:00:00 mx1 dovecot[812]: pop3-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<eve>, method=PLAIN, rip=%s, lip=192.0.2.1, session=<abd>"
	courier5424   = "<22>1 2026-11-21T10:00:00.000001+00:00 mx1 imapd-ssl 4711 - - LOGIN, user=alice, ip=[::ffff:%s], port=[50412], protocol=IMAP"
)

// postmapQuery asks the real Postfix whether key is in the map. Under CI the
// real postmap must exist; elsewhere the check falls back to the Go reader.
func postmapQuery(t *testing.T, mapPath, key string) bool {
	t.Helper()
	postmap, err := exec.LookPath("postmap")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("postmap not installed (apt-get install postfix postfix-cdb): %v", err)
		}
		keys, err := cdbwriter.ReadMap(mapPath)
		return err == nil && slices.Contains(keys, key)
	}
	out, err := exec.Command(postmap, "-q", key, "cdb:"+strings.TrimSuffix(mapPath, ".cdb")).Output()
	return err == nil && strings.TrimSpace(string(out)) == "OK"
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sendUDP(t *testing.T, addr string, msgs ...string) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range msgs {
		if _, err := c.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
}

func sendTCP(t *testing.T, addr, stream string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, stream); err != nil {
		t.Fatal(err)
	}
}

func octet(msg string) string { return fmt.Sprintf("%d %s", len(msg), msg) }

// launchDaemon starts an in-process relaygate on cfg, logging to the test;
// cancel stops it and run's result arrives on done.
func launchDaemon(t *testing.T, cfg serveConfig) (*daemon, context.CancelFunc, chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := newDaemon(ctx, cfg, zerolog.New(zerolog.NewTestWriter(t)), time.Now)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	return d, cancel, done
}

// TestInProcessEndToEnd: an RFC 3164 Dovecot login over UDP and an RFC 5424
// Courier login over octet-counted TCP each reach the map within 2 s, as the
// real postmap sees it; a failed login does not.
func TestInProcessEndToEnd(t *testing.T) {
	dir := t.TempDir()
	cfg, err := parseServeFlags([]string{
		"-udp", "127.0.0.1:0", "-tcp", "127.0.0.1:0",
		"-map", filepath.Join(dir, "pbs.cdb"), "-mynetworks", "none", "-flush", "100ms",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d, cancel, done := launchDaemon(t, cfg)
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("run did not return within 2 s of cancel")
		}
	}()
	if !fileExists(cfg.mapPath) {
		t.Fatal("map not published at startup")
	}

	sendUDP(t, d.recv.UDPAddr().String(), fmt.Sprintf(dovecotLogin, "192.0.2.10"), fmt.Sprintf(dovecotFailed, "192.0.2.66"))
	sendTCP(t, d.recv.TCPAddr().String(), octet(fmt.Sprintf(courier5424, "198.51.100.7")))

	waitFor(t, 2*time.Second, "dovecot login over UDP in the map", func() bool { return postmapQuery(t, cfg.mapPath, "192.0.2.10") })
	waitFor(t, 2*time.Second, "courier login over TCP in the map", func() bool { return postmapQuery(t, cfg.mapPath, "198.51.100.7") })
	if postmapQuery(t, cfg.mapPath, "192.0.2.66") {
		t.Error("a failed login was granted")
	}
	if got := d.pstats.Logins.Load(); got != 2 {
		t.Errorf("logins = %d, want 2", got)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// proc is relaygate running as a real process (the test binary re-executed).
type proc struct {
	cmd      *exec.Cmd
	udp, tcp string
	logs     *lineLog
	exited   chan struct{}
}

// lineLog collects a process's stderr. cmd.Wait returns only after every
// byte written to it was copied here, so the last lines (the "stopped"
// line) are never lost, as they can be with StderrPipe.
type lineLog struct {
	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte
	onLine  func(line []byte)
}

func (l *lineLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(b)
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		if l.onLine != nil {
			l.onLine(l.partial[:i])
		}
		l.partial = l.partial[i+1:]
	}
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return startProcAs(t, exe, nil, args...)
}

// startProcAs starts relaygate from exe (a copy of the test binary) with the
// given credentials (nil: the test's own).
func startProcAs(t *testing.T, exe string, cred *syscall.Credential, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(exe, append([]string{"serve", "-log-format", "json", "-udp", "127.0.0.1:0", "-tcp", "127.0.0.1:0", "-mynetworks", "none"}, args...)...)
	// atexit_sleep_ms: the race detector's own one-second pause at exit is
	// not relaygate's shutdown time.
	cmd.Env = append(os.Environ(), "RELAYGATE_TEST_MAIN=1", "GORACE=atexit_sleep_ms=0")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	ready := make(chan struct{})
	p.logs = &lineLog{onLine: func(line []byte) {
		var ev struct{ Message, UDP, TCP string }
		if json.Unmarshal(line, &ev) == nil && ev.Message == "relaygate listening" {
			p.udp, p.tcp = ev.UDP, ev.TCP
			close(ready)
		}
	}}
	cmd.Stderr = p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("relaygate log:\n%s", p.log())
		}
	})
	select {
	case <-ready:
	case <-p.exited:
		t.Fatalf("relaygate exited at startup:\n%s", p.log())
	case <-time.After(10 * time.Second):
		t.Fatalf("relaygate did not start:\n%s", p.log())
	}
	return p
}

func (p *proc) log() string { return p.logs.String() }

// stop sends sig and returns the exit code.
func (p *proc) stop(t *testing.T, sig syscall.Signal, within time.Duration) int {
	t.Helper()
	start := time.Now()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(within):
		t.Fatalf("relaygate did not exit within %s of %v", within, sig)
	}
	t.Logf("exited %s after %v", time.Since(start).Round(time.Millisecond), sig)
	return p.cmd.ProcessState.ExitCode()
}

func TestRestartKeepsGrants(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			mapPath := filepath.Join(dir, "pbs.cdb")
			p := startProc(t, "-map", mapPath, "-flush", "100ms")
			sendUDP(t, p.udp, fmt.Sprintf(dovecotLogin, "192.0.2.10"))
			sendTCP(t, p.tcp, fmt.Sprintf(courier5424, "198.51.100.7")+"\n")
			waitFor(t, 2*time.Second, "both logins in the map", func() bool {
				return postmapQuery(t, mapPath, "192.0.2.10") && postmapQuery(t, mapPath, "198.51.100.7")
			})
			code := p.stop(t, sig, 2*time.Second)
			if sig == syscall.SIGTERM && code != 0 {
				t.Fatalf("exit code after SIGTERM = %d, want 0", code)
			}
			startProc(t, "-map", mapPath, "-flush", "100ms")
			for _, a := range []string{"192.0.2.10", "198.51.100.7"} {
				if !postmapQuery(t, mapPath, a) {
					t.Errorf("%s lost across a restart after %v", a, sig)
				}
			}
		})
	}
}

func TestGraceExpiresWithoutTraffic(t *testing.T) {
	dir := t.TempDir()
	mapPath := filepath.Join(dir, "pbs.cdb")
	p := startProc(t, "-map", mapPath, "-grace", "2s", "-flush", "100ms")
	// A login without a session id (Dovecot 1.x): nothing keeps it open.
	sendUDP(t, p.udp, "<22>Nov 21 10:00:00 mx1 dovecot: pop3-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1")
	waitFor(t, 2*time.Second, "login in the map", func() bool { return postmapQuery(t, mapPath, "192.0.2.10") })
	granted := time.Now()
	// No traffic from here on: only relaygate's own timer can remove it,
	// within grace + 2 s.
	waitFor(t, 4*time.Second, "expiry within grace + 2 s", func() bool { return !postmapQuery(t, mapPath, "192.0.2.10") })
	t.Logf("removed %v after it appeared (grace 2s)", time.Since(granted).Round(10*time.Millisecond))
	if !strings.Contains(p.log(), `"message":"expired"`) {
		t.Errorf("no expiry log line")
	}
}

func TestCrashInputsLeaveDaemonGranting(t *testing.T) {
	dir := t.TempDir()
	mapPath := filepath.Join(dir, "pbs.cdb")
	p := startProc(t, "-map", mapPath, "-flush", "100ms")
	crash := []string{"<13>", "<13>Nov 21 10:00:00 host", "-5 <13>abc"}
	sendUDP(t, p.udp, crash...)
	for _, c := range crash {
		sendTCP(t, p.tcp, c+"\n")
		sendTCP(t, p.tcp, c) // and unterminated, closing the connection
	}
	sendTCP(t, p.tcp, "-5 <13>abc")
	sendUDP(t, p.udp, fmt.Sprintf(dovecotLogin, "192.0.2.20"))
	sendTCP(t, p.tcp, octet(fmt.Sprintf(courier5424, "192.0.2.21")))
	waitFor(t, 2*time.Second, "logins after the crash inputs", func() bool {
		return postmapQuery(t, mapPath, "192.0.2.20") && postmapQuery(t, mapPath, "192.0.2.21")
	})
	select {
	case <-p.exited:
		t.Fatalf("relaygate died:\n%s", p.log())
	default:
	}
	if code := p.stop(t, syscall.SIGTERM, 2*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-grace", "0s"},
		{"-grace", "soon"},
		{"-allow", "300.1.1.1/8"},
		{"-exclude", "192.0.2.0/33"},
		{"-mynetworks", "sometimes"},
		{"-log-level", "loud"},
		{"-log-format", "xml"},
		{"-udp", "", "-tcp", ""},
		{"-mynetworks", "none", "-postfix-config", "/etc/postfix"},
		{"extra"},
	} {
		var stderr bytes.Buffer
		code := run(context.Background(), append([]string{"serve"}, args...), nil, io.Discard, &stderr)
		msg := strings.TrimSpace(stderr.String())
		if code == 0 || msg == "" {
			t.Errorf("relaygate serve %q: code %d, stderr %q; want a failure with a message", args, code, msg)
		}
	}
	if code := run(context.Background(), []string{"frobnicate"}, nil, io.Discard, io.Discard); code != 2 {
		t.Errorf("unknown command exit %d, want 2", code)
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := parsePrefixes("127.0.0.0/8 [::ffff:127.0.0.0]/104, [::1]/128,192.0.2.7, 2001:db8::/32")
	if err != nil {
		t.Fatal(err)
	}
	want := "127.0.0.0/8 127.0.0.0/8 ::1/128 192.0.2.7/32 2001:db8::/32"
	if s := joinPrefixes(got); strings.ReplaceAll(s, ",", " ") != want {
		t.Errorf("parsePrefixes = %s, want %s", s, want)
	}
	var res mynetworksResult
	if err := addMynetworks(&res, "127.0.0.0/8, hash:/etc/postfix/net, cafe::/16, !192.0.2.1", 0); err != nil {
		t.Fatal(err)
	}
	if joinPrefixes(res.prefixes) != "127.0.0.0/8,cafe::/16" || len(res.ignored) != 2 {
		t.Errorf("mynetworks = %v ignored %v", res.prefixes, res.ignored)
	}
}

// TestOpenSessionOutlivesGrace: an IMAP session open longer than -grace keeps
// relaying allowed; grace runs from its logout.
func TestOpenSessionOutlivesGrace(t *testing.T) {
	dir := t.TempDir()
	mapPath := filepath.Join(dir, "pbs.cdb")
	p := startProc(t, "-map", mapPath, "-grace", "1s", "-flush", "100ms")
	sendUDP(t, p.udp, "<22>Nov 21 10:00:00 mx1 dovecot: imap-login: Login: user=<tb>, method=PLAIN, rip=192.0.2.30, lip=192.0.2.1, mpid=9, session=<TB1>")
	waitFor(t, 2*time.Second, "login in the map", func() bool { return postmapQuery(t, mapPath, "192.0.2.30") })
	// Three times the grace: a plain grant would be gone by now.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if !postmapQuery(t, mapPath, "192.0.2.30") {
			t.Fatal("grant with an open session expired")
		}
		time.Sleep(100 * time.Millisecond)
	}
	sendUDP(t, p.udp, "<22>Nov 21 10:00:05 mx1 dovecot: imap(tb)<9><TB1>: Disconnected: Logged out in=1 out=2")
	loggedOut := time.Now()
	waitFor(t, 3*time.Second, "expiry after logout + grace", func() bool { return !postmapQuery(t, mapPath, "192.0.2.30") })
	if d := time.Since(loggedOut); d < 900*time.Millisecond {
		t.Errorf("removed %v after the logout, before grace", d)
	}
}

// TestSecondDaemonRefusedInProcess: the lock is per open file, so a second
// daemon on the same map is refused even in the same process, before it
// binds or touches anything; after the first stops, one starts again.
func TestSecondDaemonRefusedInProcess(t *testing.T) {
	dir := t.TempDir()
	mapPath := filepath.Join(dir, "pbs.cdb")
	cfg, err := parseServeFlags([]string{"-udp", "127.0.0.1:0", "-tcp", "", "-map", mapPath, "-mynetworks", "none"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, cancel, done := launchDaemon(t, cfg)
	before, _ := os.ReadFile(mapPath)
	_, err = newDaemon(context.Background(), cfg, zerolog.New(zerolog.NewTestWriter(t)), time.Now)
	var locked *cdbwriter.LockedError
	if !errors.As(err, &locked) || !strings.Contains(err.Error(), mapPath) {
		t.Fatalf("second newDaemon = %v, want a LockedError naming %s", err, mapPath)
	}
	if after, _ := os.ReadFile(mapPath); !bytes.Equal(before, after) {
		t.Error("the refused daemon changed the map")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	d2, err := newDaemon(ctx2, cfg, zerolog.New(zerolog.NewTestWriter(t)), time.Now)
	if err != nil {
		t.Fatalf("after the first stopped: %v", err)
	}
	go func() { done <- d2.run(ctx2) }()
	cancel2()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestReceivesDuringStartup: the sockets are read while the state file
// loads (issue 11, point 9): at a million grants that takes seconds, and
// UDP beyond the socket buffer was lost. The clock's first call is the
// service's start; it is held there until the receiver has stamped the
// logins sent meanwhile, which it did not do before run started.
func TestReceivesDuringStartup(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "log.sock")
	mapPath := filepath.Join(dir, "pbs.cdb")
	cfg, err := parseServeFlags([]string{"-udp", "", "-tcp", "", "-unix", sock, "-map", mapPath, "-mynetworks", "none", "-flush", "50ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	starting, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int64
	now := func() time.Time {
		if calls.Add(1) == 1 {
			close(starting)
			<-release
		}
		return time.Now()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type started struct {
		d   *daemon
		err error
	}
	res := make(chan started, 1)
	go func() {
		d, err := newDaemon(ctx, cfg, zerolog.New(zerolog.NewTestWriter(t)), now)
		res <- started{d, err}
	}()
	<-starting
	addrs := []string{"192.0.2.21", "192.0.2.22", "192.0.2.23"}
	conn, err := net.Dial("unixgram", sock)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if _, err := conn.Write([]byte(fmt.Sprintf(dovecotLogin, a))); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() < int64(1+len(addrs)) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	read := calls.Load() - 1
	close(release)
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	done := make(chan error, 1)
	go func() { done <- r.d.run(ctx) }()
	if read < int64(len(addrs)) {
		t.Errorf("the receiver read %d of %d logins while the service started, want all", read, len(addrs))
	}
	waitFor(t, 5*time.Second, "the logins received during the start in the map", func() bool {
		keys, err := cdbwriter.ReadMap(mapPath)
		return err == nil && len(keys) == len(addrs)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
