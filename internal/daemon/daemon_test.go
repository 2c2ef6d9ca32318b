package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/internal/grants"
	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/internal/testutil/sendtest"
	"github.com/relaygate/relaygate/receiver"
)

const (
	dovecotLogin  = "<22>Nov 21 10:00:00 mx1 dovecot[812]: pop3-login: Login: user=<bob>, method=PLAIN, rip=%s, lip=192.0.2.1, mpid=1, session=<abc>"
	dovecotFailed = "<22>Nov 21 10:00:00 mx1 dovecot[812]: pop3-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<eve>, method=PLAIN, rip=%s, lip=192.0.2.1, session=<abd>"
	courier5424   = "<22>1 2026-11-21T10:00:00.000001+00:00 mx1 imapd-ssl 4711 - - LOGIN, user=alice, ip=[::ffff:%s], port=[50412], protocol=IMAP"
)

// testConfig is what `relaygate serve` makes of its defaults, with
// loopback listeners on free ports, -mynetworks none, a quick -flush and
// the map in a directory of the test's own.
func testConfig(t testing.TB) Config {
	t.Helper()
	dir := t.TempDir()
	return Config{
		UDP: "127.0.0.1:0", TCP: "127.0.0.1:0",
		Allow:      []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Parsers:    ParserConfig{Daemons: "all"},
		Grace:      30 * time.Minute,
		MaxSession: grants.DefaultMaxSession,
		MaxEntries: grants.DefaultMaxEntries,
		Mynetworks: "none",
		MapPath:    filepath.Join(dir, "pbs.cdb"),
		StatePath:  filepath.Join(dir, "pbs.state"),
		Flush:      50 * time.Millisecond,
		UDPReadBuf: receiver.DefaultUDPReadBuffer,
		MaxConns:   receiver.DefaultMaxConns,
		Version:    "test",
	}
}

// launch starts a daemon on cfg, logging to the test, and stops it when
// the test ends; stop stops it earlier and returns Run's error.
func launch(t testing.TB, cfg Config) (d *Daemon, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := New(ctx, cfg, zerolog.New(zerolog.NewTestWriter(t)), cdbwriter.SystemClock{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var result error
	stopped := false
	stop = func() error {
		if stopped {
			return result
		}
		stopped = true
		cancel()
		select {
		case result = <-done:
		case <-time.After(30 * time.Second): // a hang guard: a race build on a loaded CI machine is slow
			result = errors.New("Run did not return within 30 s of cancel")
		}
		return result
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return d, stop
}

// TestInProcessEndToEnd: an RFC 3164 Dovecot login over UDP and an RFC 5424
// Courier login over octet-counted TCP each reach the map within 2 s, as the
// real postmap sees it; a failed login does not.
func TestInProcessEndToEnd(t *testing.T) {
	cfg := testConfig(t)
	d, stop := launch(t, cfg)
	if _, err := os.Stat(cfg.MapPath); err != nil {
		t.Fatalf("map not published at startup: %v", err)
	}
	sendtest.UDP(t, d.UDPAddr().String(), fmt.Sprintf(dovecotLogin, "192.0.2.10"), fmt.Sprintf(dovecotFailed, "192.0.2.66"))
	sendtest.TCP(t, d.TCPAddr().String(), sendtest.Octet(fmt.Sprintf(courier5424, "198.51.100.7")))

	testutil.Eventually(t, 2*time.Second, "dovecot login over UDP in the map", func() bool { return sendtest.InMap(t, cfg.MapPath, "192.0.2.10") })
	testutil.Eventually(t, 2*time.Second, "courier login over TCP in the map", func() bool { return sendtest.InMap(t, cfg.MapPath, "198.51.100.7") })
	if sendtest.InMap(t, cfg.MapPath, "192.0.2.66") {
		t.Error("a failed login was granted")
	}
	if got := d.pipe.Counts().Logins; got != 2 {
		t.Errorf("logins = %d, want 2", got)
	}
	if err := stop(); err != nil {
		t.Errorf("run: %v", err)
	}
}

// TestSecondDaemonRefusedInProcess: the lock is per open file, so a second
// daemon on the same map is refused even in the same process, before it
// binds or touches anything; after the first stops, one starts again.
func TestSecondDaemonRefusedInProcess(t *testing.T) {
	cfg := testConfig(t)
	cfg.TCP = ""
	_, stop := launch(t, cfg)
	before, _ := os.ReadFile(cfg.MapPath)
	_, err := New(context.Background(), cfg, zerolog.New(zerolog.NewTestWriter(t)), cdbwriter.SystemClock{})
	var locked *cdbwriter.LockedError
	if !errors.As(err, &locked) || !strings.Contains(err.Error(), cfg.MapPath) {
		t.Fatalf("second New = %v, want a LockedError naming %s", err, cfg.MapPath)
	}
	if after, _ := os.ReadFile(cfg.MapPath); !bytes.Equal(before, after) {
		t.Error("the refused daemon changed the map")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	_, stop2 := launch(t, cfg)
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
}

// TestReceivesDuringStartup: the sockets are read while the state file
// loads (issue 11, point 9): at a million grants that takes seconds, and
// UDP beyond the socket buffer was lost. The clock's first call is the
// service's start; it is held there until the receiver has stamped the
// logins sent meanwhile, which it did not do before Run started.
func TestReceivesDuringStartup(t *testing.T) {
	cfg := testConfig(t)
	sock := filepath.Join(filepath.Dir(cfg.MapPath), "log.sock")
	cfg.UDP, cfg.TCP, cfg.Unix, cfg.UnixMode = "", "", sock, 0o660
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
		d   *Daemon
		err error
	}
	res := make(chan started, 1)
	go func() {
		d, err := New(ctx, cfg, zerolog.New(zerolog.NewTestWriter(t)), funcClock(now))
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
	testutil.Poll(testutil.EventuallyFloor, 10*time.Millisecond, func() bool { return calls.Load() >= int64(1+len(addrs)) })
	read := calls.Load() - 1
	close(release)
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	done := make(chan error, 1)
	go func() { done <- r.d.Run(ctx) }()
	if read < int64(len(addrs)) {
		t.Errorf("the receiver read %d of %d logins while the service started, want all", read, len(addrs))
	}
	testutil.Eventually(t, 5*time.Second, "the logins received during the start in the map", func() bool {
		keys, err := cdbwriter.ReadMap(cfg.MapPath)
		return err == nil && len(keys) == len(addrs)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A group that does not exist stops the daemon at startup, naming it.
func TestUnixGroupMustExist(t *testing.T) {
	cfg := testConfig(t)
	sock := filepath.Join(filepath.Dir(cfg.MapPath), "relaygate.sock")
	cfg.UDP, cfg.TCP, cfg.Unix, cfg.UnixGroup = "", "", sock, "no-such-group-h3"
	d, err := New(context.Background(), cfg, zerolog.Nop(), cdbwriter.SystemClock{})
	if err == nil {
		d.recv.Close()
		t.Fatal("started with a group that does not exist")
	}
	if !strings.Contains(err.Error(), `-unix-group "no-such-group-h3": no such group`) {
		t.Errorf("error %q does not name the group", err)
	}
	if _, err := os.Lstat(sock); err == nil {
		t.Error("socket created although startup failed")
	}
}

// funcClock is the system clock with its time from a function.
type funcClock func() time.Time

func (c funcClock) Now() time.Time                         { return c() }
func (c funcClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// TestNewHoldsCodeToTheFlagsRules: a Config built in code (not by the
// flags) meets Check in New, so what the command line refuses cannot
// start a daemon by another way, and nothing is bound or written first.
func TestNewHoldsCodeToTheFlagsRules(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*Config)
		want   string
	}{
		"zero grace":               {func(c *Config) { c.Grace = 0 }, "-grace"},
		"zero flush":               {func(c *Config) { c.Flush = 0 }, "-flush"},
		"bad mynetworks":           {func(c *Config) { c.Mynetworks = "10.0.0.0/33" }, "-mynetworks"},
		"postfix-config unused":    {func(c *Config) { c.PostfixConfig = "/etc/postfix" }, "-postfix-config"},
		"unix mode beyond 0777":    {func(c *Config) { c.Unix = filepath.Join(t.TempDir(), "s"); c.UnixMode = 0o4777 }, "-unix-mode"},
		"takeover with no timeout": {func(c *Config) { c.Takeover = true }, "-takeover-timeout"},
		"no input":                 {func(c *Config) { c.UDP, c.TCP = "", "" }, "nothing to read logins from"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.mutate(&cfg)
			_, err := New(context.Background(), cfg, zerolog.Nop(), cdbwriter.SystemClock{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error naming %s", err, tc.want)
			}
			if _, err := os.Stat(cfg.MapPath); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the refused daemon wrote %s (%v)", cfg.MapPath, err)
			}
		})
	}
}
