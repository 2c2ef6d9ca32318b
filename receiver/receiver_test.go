package receiver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/rs/zerolog"
)

const login3164 = "<22>Nov 21 10:00:00 mx1 dovecot[812]: pop3-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1"

type harness struct {
	r      *Receiver
	out    chan Message
	stats  *Stats
	logs   *logBuffer
	cancel context.CancelFunc
	done   chan struct{}
}

// logBuffer keeps the receiver's log for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	if cfg.Allow == nil {
		cfg.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	logs := new(logBuffer)
	cfg.Logger = zerolog.New(io.MultiWriter(zerolog.NewTestWriter(t), logs)).Level(zerolog.DebugLevel)
	cfg.Stats = new(Stats)
	r, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{r: r, out: make(chan Message, 100), stats: cfg.Stats, logs: logs, cancel: cancel, done: make(chan struct{})}
	go func() { r.Serve(ctx, h.out); close(h.done) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(testutil.EventuallyFloor):
		panic("Serve did not return after cancel")
	}
}

func (h *harness) expect(t *testing.T, program, text string) Message {
	t.Helper()
	select {
	case m := <-h.out:
		if m.Program != program || m.Text != text {
			t.Fatalf("got program %q text %q, want %q %q", m.Program, m.Text, program, text)
		}
		return m
	case <-time.After(testutil.EventuallyFloor):
		t.Fatalf("no message (want %s: %s)", program, text)
	}
	return Message{}
}

func (h *harness) expectNothing(t *testing.T) {
	t.Helper()
	select {
	case m := <-h.out:
		t.Fatalf("unexpected message %+v", m)
	default:
	}
}

func TestUDPDatagrams(t *testing.T) {
	h := start(t, Config{UDP: "127.0.0.1:0"})
	c, err := net.Dial("udp", h.r.UDPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, msg := range []string{login3164, login3164 + "\n", "<13>", "<13>Nov 21 10:00:00 host", "-5 <13>abc", login3164} {
		c.Write([]byte(msg))
	}
	text := "pop3-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1"
	m := h.expect(t, "dovecot", text)
	if m.Transport != "udp" || !strings.HasPrefix(m.Peer, "127.0.0.1:") || m.Received.IsZero() {
		t.Errorf("metadata = %+v", m)
	}
	h.expect(t, "dovecot", text)
	// The three go-syslog crash inputs came in between and must not stop
	// the listener: the last login still arrives.
	h.expect(t, "dovecot", text)
	if got := h.stats.malformed.Load(); got != 3 {
		t.Errorf("malformed = %d, want 3", got)
	}
}

func TestTCPFramingsAndCrashInputs(t *testing.T) {
	h := start(t, Config{TCP: "127.0.0.1:0"})
	c, err := net.Dial("tcp", h.r.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rfc5424 := "<22>1 2026-11-21T10:00:00.000001+01:00 mx1 imapd 77 - - LOGIN, user=a, ip=[::ffff:192.0.2.7], port=[1]"
	stream := login3164 + "\n" +
		"<13>\n<13>Nov 21 10:00:00 host\n-5 <13>abc\n" +
		itoa(len(rfc5424)) + " " + rfc5424 +
		strings.Repeat("A", 70000) + "\n" +
		login3164 + "\n"
	if _, err := c.Write([]byte(stream)); err != nil {
		t.Fatal(err)
	}
	text := "pop3-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1"
	h.expect(t, "dovecot", text)
	m := h.expect(t, "imapd", "LOGIN, user=a, ip=[::ffff:192.0.2.7], port=[1]")
	if m.Format != "rfc5424" || m.PID != "77" {
		t.Errorf("5424 envelope = %+v", m.Envelope)
	}
	// After the over-long line the same connection still delivers.
	h.expect(t, "dovecot", text)
	if got := h.stats.tooLong.Load(); got != 1 {
		t.Errorf("too long = %d, want 1", got)
	}
}

func TestAllowlist(t *testing.T) {
	h := start(t, Config{
		UDP:   "127.0.0.1:0",
		TCP:   "127.0.0.1:0",
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	other := &net.UDPAddr{IP: net.ParseIP("127.0.0.2")}
	u, err := net.DialUDP("udp", other, h.r.UDPAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte(login3164))
	u.Close()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	c, err := d.Dial("tcp", h.r.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(login3164 + "\n"))
	// The server closes a refused connection: the read sees EOF or reset.
	c.SetReadDeadline(time.Now().Add(testutil.EventuallyFloor))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("refused connection stayed open")
	}
	c.Close()
	// An allowed sender gets through, which also orders this check after
	// the refused ones.
	ok, _ := net.Dial("udp", h.r.UDPAddr().String())
	ok.Write([]byte(login3164))
	ok.Close()
	h.expect(t, "dovecot", "pop3-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1")
	h.expectNothing(t)
	if got := h.stats.notAllowed.Load(); got != 2 {
		t.Errorf("not allowed = %d, want 2", got)
	}
}

func TestUnixDatagram(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relaygate.sock")
	h := start(t, Config{Unix: path})
	c, err := net.Dial("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("<22>Nov 21 10:00:00 pop3d: LOGIN, user=a, ip=[192.0.2.1]"))
	c.Close()
	m := h.expect(t, "pop3d", "LOGIN, user=a, ip=[192.0.2.1]")
	if m.Transport != "unix" {
		t.Errorf("transport = %q", m.Transport)
	}
}

func TestListenErrors(t *testing.T) {
	// No listener at all is allowed: the daemon reading only the journal.
	if r, err := Listen(Config{}); err != nil {
		t.Errorf("Listen with no listener: %v", err)
	} else {
		r.Close()
	}
	if _, err := Listen(Config{UDP: "127.0.0.1:notaport"}); err == nil || !strings.Contains(err.Error(), "notaport") {
		t.Errorf("bad address error = %v", err)
	}
	path := filepath.Join(t.TempDir(), "file")
	if err := writeFile(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(Config{Unix: path}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("unix over a regular file: %v", err)
	}
}

// waitCount waits for a counter to reach want.
func waitCount(t *testing.T, name string, c interface{ Load() int64 }, want int64) {
	t.Helper()
	if _, ok := testutil.Poll(testutil.EventuallyFloor, time.Millisecond, func() bool { return c.Load() == want }); !ok {
		t.Fatalf("%s = %d, want %d", name, c.Load(), want)
	}
}

// expectLog waits for a log line holding every one of parts.
func (h *harness) expectLog(t *testing.T, parts ...string) {
	t.Helper()
	logged := func() bool {
		for _, line := range strings.Split(h.logs.String(), "\n") {
			found := true
			for _, p := range parts {
				found = found && strings.Contains(line, p)
			}
			if found {
				return true
			}
		}
		return false
	}
	if _, ok := testutil.Poll(testutil.EventuallyFloor, time.Millisecond, logged); !ok {
		t.Fatalf("no log line with %q in:\n%s", parts, h.logs.String())
	}
}

// expectClosed reads from c until the server closes it.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testutil.EventuallyFloor))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server did not close the connection")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func writeFile(path string) error { return os.WriteFile(path, []byte("x"), 0o644) }

// The unix socket gets exactly the mode and group asked for, whatever the
// umask: before, bind(2) applied the umask, so under umask 0 any local user
// could write to it and grant relay.
func TestUnixSocketModeAndGroup(t *testing.T) {
	old := syscall.Umask(0) // the loosest umask: nothing may depend on it
	defer syscall.Umask(old)
	nogroup, err := user.LookupGroup("nogroup")
	if err != nil {
		t.Fatalf("test needs the group nogroup: %v", err)
	}
	tests := []struct {
		name  string
		mode  os.FileMode
		group string
		want  os.FileMode
		gid   string
	}{
		{name: "default", want: DefaultUnixMode, gid: strconv.Itoa(os.Getegid())},
		{name: "owner only", mode: 0o600, want: 0o600, gid: strconv.Itoa(os.Getegid())},
		{name: "group by name", mode: 0o620, group: "nogroup", want: 0o620, gid: nogroup.Gid},
		{name: "group by gid", group: nogroup.Gid, want: DefaultUnixMode, gid: nogroup.Gid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "relaygate.sock")
			// A socket left by an earlier run, with the loose mode.
			stale, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			stale.Close()
			h := start(t, Config{Unix: path, UnixMode: tc.mode, UnixGroup: tc.group})
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != tc.want || strconv.Itoa(int(st.Gid)) != tc.gid {
				t.Errorf("socket %v gid %d, want mode %v gid %s", fi.Mode(), st.Gid, tc.want, tc.gid)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("left beside the socket: %v", entries)
			}
			c, err := net.Dial("unixgram", path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte("<22>Nov 21 10:00:00 pop3d: LOGIN, user=a, ip=[192.0.2.1]"))
			h.expect(t, "pop3d", "LOGIN, user=a, ip=[192.0.2.1]")
		})
	}
}

// TestUnixSocketPathTooLong: a -unix path short enough for sun_path itself,
// but not once bound inside the private directory beside it, is refused
// with an error that says so, not EINVAL naming the temporary path.
func TestUnixSocketPathTooLong(t *testing.T) {
	deep := filepath.Join(t.TempDir(), "d")
	deep += strings.Repeat("d", max(0, maxSunPath-12-len(deep)))
	if err := os.Mkdir(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(deep, "s")
	if len(path) >= maxSunPath {
		t.Skipf("temporary directory %s too deep for this test", deep)
	}
	r, err := Listen(Config{Unix: path})
	if err == nil {
		r.Close()
		t.Fatal("Listen succeeded")
	}
	if !strings.Contains(err.Error(), "path too long") || !strings.Contains(err.Error(), "shorter -unix path") {
		t.Errorf("error %q does not say the path is too long", err)
	}
	if entries, _ := os.ReadDir(deep); len(entries) != 0 {
		t.Errorf("the refused listen left %v", entries)
	}
}

func TestUnixSocketErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		cfg     Config
		mention []string
	}{
		{"unknown group", Config{Unix: filepath.Join(dir, "s"), UnixGroup: "no-such-group-h3"}, []string{`-unix-group "no-such-group-h3"`, "no such group"}},
		{"group without socket", Config{UDP: "127.0.0.1:0", UnixGroup: "nogroup"}, []string{"-unix-group needs -unix"}},
		{"mode beyond permissions", Config{Unix: filepath.Join(dir, "s"), UnixMode: os.ModeSetuid | 0o660}, []string{"-unix-mode"}},
		{"directory missing", Config{Unix: filepath.Join(dir, "missing", "s")}, []string{filepath.Join(dir, "missing", "s")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Listen(tc.cfg)
			if err == nil {
				r.Close()
				t.Fatal("Listen succeeded")
			}
			for _, s := range tc.mention {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed listens left %v", entries)
	}
}
