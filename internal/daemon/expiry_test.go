package daemon

import (
	"context"
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/internal/grants"
	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/internal/testutil/sendtest"
)

// fakeClock is a cdbwriter.Clock that moves only when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeTimer
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeTimer{at: c.now.Add(d), ch: ch})
	return ch
}

// advance moves the time on by d and fires every timer due by then.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

// lookup reads addr's grant from the table, on the goroutine that owns it.
func (d *Daemon) lookup(addr netip.Addr) (grants.Grant, bool) {
	type found struct {
		g  grants.Grant
		ok bool
	}
	reply := make(chan found, 1)
	d.mon.reads <- func(t *grants.Table) { g, ok := t.Lookup(addr); reply <- found{g, ok} }
	f := <-reply
	return f.g, f.ok
}

// TestExpiryRunsOnTheDaemonsClock: a grant leaves the map when grace has
// passed on the daemon's own clock, with no traffic at all to wake it; an
// open session holds it past grace, and grace runs from its logout. The
// clock is the test's, so the test waits for no timer.
func TestExpiryRunsOnTheDaemonsClock(t *testing.T) {
	const grace, flush = 2 * time.Second, time.Second
	clock := &fakeClock{now: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)}
	cfg := testConfig(t)
	cfg.Grace, cfg.Flush = grace, flush
	ctx, cancel := context.WithCancel(context.Background())
	logs := new(syncBuffer)
	d, err := New(ctx, cfg, zerolog.New(io.MultiWriter(zerolog.NewTestWriter(t), logs)), clock)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	plain, held := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.30")
	published := func(a netip.Addr) bool { return sendtest.InMap(t, cfg.MapPath, a.String()) }

	// A login without a session id (Dovecot 1.x): nothing keeps it open.
	// The other opens an IMAP session.
	sendtest.UDP(t, d.UDPAddr().String(),
		"<22>Nov 21 10:00:00 mx1 dovecot: pop3-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1",
		"<22>Nov 21 10:00:00 mx1 dovecot: imap-login: Login: user=<tb>, method=PLAIN, rip=192.0.2.30, lip=192.0.2.1, mpid=9, session=<TB1>")
	testutil.Eventually(t, 2*time.Second, "both logins in the table", func() bool { return d.Granted(plain) && d.Granted(held) })
	clock.advance(flush)
	testutil.Eventually(t, 2*time.Second, "both logins in the map one -flush after the start", func() bool { return published(plain) && published(held) })

	// Only the daemon's own timer can remove the plain grant now.
	clock.advance(grace - flush - time.Millisecond)
	if !d.Granted(plain) {
		t.Fatal("the grant expired before grace")
	}
	clock.advance(time.Millisecond)
	testutil.Eventually(t, 2*time.Second, "the plain grant gone from the map at grace", func() bool { return !published(plain) })
	if !published(held) {
		t.Fatal("the grant with an open session expired at grace")
	}
	if !strings.Contains(logs.String(), `"message":"expired"`) {
		t.Error("no expiry log line")
	}

	// Three times the grace: a plain grant would long be gone.
	clock.advance(3 * grace)
	if g, ok := d.lookup(held); !ok || !g.Open() || !published(held) {
		t.Fatalf("the grant with an open session: %+v, in the table %v", g, ok)
	}
	sendtest.UDP(t, d.UDPAddr().String(), "<22>Nov 21 10:00:05 mx1 dovecot: imap(tb)<9><TB1>: Disconnected: Logged out in=1 out=2")
	testutil.Eventually(t, 2*time.Second, "the session closed", func() bool { g, ok := d.lookup(held); return ok && !g.Open() })
	clock.advance(grace - time.Millisecond)
	if !d.Granted(held) {
		t.Fatal("the grant expired before grace after its logout")
	}
	clock.advance(time.Millisecond)
	testutil.Eventually(t, 2*time.Second, "the grant gone from the map grace after its logout", func() bool { return !published(held) })
}
