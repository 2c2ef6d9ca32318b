package cdbwriter

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/grants"
)

// runService is a started Service whose publishes are recorded (their
// times, as Run's clock gave them) and whose log is kept.
func runService(t *testing.T, dir string, tc grants.TableConfig, state bool) (*Service, *[]time.Time, *bytes.Buffer) {
	t.Helper()
	var published []time.Time
	var log bytes.Buffer
	cfg := testConfig(t, dir, &log)
	cfg.OnPublish = func(now time.Time, _ time.Duration, err error) {
		if err == nil {
			published = append(published, now)
		}
	}
	if !state {
		cfg.StatePath = ""
	}
	return startService(t, cfg, tc), &published, &log
}

func login(addr, session string) grants.Event {
	return grants.Event{Kind: grants.EventLogin, Grant: grant(addr), Session: session}
}

func wantTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("%s at %v, want %v", what, got.Sub(t0), want.Sub(t0))
	}
}

// TestRunExpiresOnItsOwnTimer: with no traffic after a login, Run's own
// timer syncs the login to the state file within syncInterval, publishes
// it one -flush after the previous publish, and takes it out of the map
// the moment grace runs out, then asks to be woken no more.
func TestRunExpiresOnItsOwnTimer(t *testing.T) {
	dir := t.TempDir()
	svc, published, log := runService(t, dir, grants.TableConfig{Grace: 5 * time.Second}, true)
	r := startRun(t, svc, newFakeClock(t0))
	if w := r.wake(); !w.IsZero() {
		t.Fatalf("an empty table asked to be woken at %v", w)
	}
	r.send(login("192.0.2.10", ""))
	wantTime(t, "journal sync", r.fire(), t0.Add(100*time.Millisecond))
	if gs, err := LoadState(svc.cfg.StatePath); err != nil || len(gs) != 1 {
		t.Fatalf("state after the sync: %v, %v", gs, err)
	}
	if keys := mapKeys(t, dir); len(keys) != 0 {
		t.Fatalf("published within -flush of the start's publish: %v", keys)
	}
	wantTime(t, "publish", r.fire(), t0.Add(time.Second))
	if keys := mapKeys(t, dir); !slices.Equal(keys, []string{"192.0.2.10"}) {
		t.Fatalf("map after the publish = %v", keys)
	}
	wantTime(t, "expiry", r.fire(), t0.Add(5*time.Second))
	if keys := mapKeys(t, dir); len(keys) != 0 {
		t.Fatalf("map after grace = %v, want empty", keys)
	}
	if w := r.wake(); !w.IsZero() {
		t.Fatalf("after the expiry Run asked to be woken at %v", w)
	}
	if want := []time.Time{t0, t0.Add(time.Second), t0.Add(5 * time.Second)}; !slices.EqualFunc(*published, want, time.Time.Equal) {
		t.Errorf("published at %v, want %v", *published, want)
	}
	if svc.stats.Expired.Load() != 1 || !strings.Contains(log.String(), `"message":"expired"`) {
		t.Errorf("expiry not counted (%d) or not logged", svc.stats.Expired.Load())
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestRunKeepsOpenSessionPastGrace: an IMAP session open longer than grace
// keeps relaying allowed (Run asks to be woken only at -max-session); grace
// runs from its logout.
func TestRunKeepsOpenSessionPastGrace(t *testing.T) {
	dir := t.TempDir()
	svc, _, _ := runService(t, dir, grants.TableConfig{Grace: time.Second}, true)
	r := startRun(t, svc, newFakeClock(t0))
	r.send(login("192.0.2.30", "TB1"))
	wantTime(t, "journal sync", r.fire(), t0.Add(100*time.Millisecond))
	wantTime(t, "publish", r.fire(), t0.Add(time.Second))
	wantTime(t, "next wake-up with the session open", r.wake(), t0.Add(grants.DefaultMaxSession))
	r.advance(t0.Add(3 * time.Second)) // three times grace
	if keys := mapKeys(t, dir); !slices.Equal(keys, []string{"192.0.2.30"}) {
		t.Fatalf("map with the session open = %v", keys)
	}
	r.send(grants.Event{Kind: grants.EventLogout, Grant: grants.Grant{Daemon: "dovecot", User: "alice"}, Session: "TB1"})
	wantTime(t, "journal sync of the logout", r.fire(), t0.Add(3100*time.Millisecond))
	if keys := mapKeys(t, dir); len(keys) != 1 {
		t.Fatalf("removed before grace after the logout: %v", keys)
	}
	wantTime(t, "expiry", r.fire(), t0.Add(4*time.Second))
	if keys := mapKeys(t, dir); len(keys) != 0 {
		t.Fatalf("map at logout + grace = %v, want empty", keys)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestRunCoalescesPublishes: logins in a burst go out in one publish, one
// -flush after the previous one, and a repeat login (which moves only an
// expiry) publishes nothing and asks for no earlier wake-up.
func TestRunCoalescesPublishes(t *testing.T) {
	dir := t.TempDir()
	svc, published, _ := runService(t, dir, grants.TableConfig{Grace: time.Hour}, false)
	r := startRun(t, svc, newFakeClock(t0))
	for i := 1; i <= 3; i++ {
		r.advance(t0.Add(time.Duration(i) * 100 * time.Millisecond))
		r.send(login(fmt.Sprint("192.0.2.", i), ""))
	}
	wantTime(t, "publish", r.fire(), t0.Add(time.Second))
	if keys := mapKeys(t, dir); len(keys) != 3 {
		t.Fatalf("map = %v", keys)
	}
	r.send(login("192.0.2.3", ""))
	wantTime(t, "next wake-up after a repeat login", r.wake(), t0.Add(time.Hour+100*time.Millisecond))
	if len(*published) != 2 {
		t.Fatalf("published at %v, want the start and one more", *published)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if len(*published) != 2 {
		t.Fatalf("the final write published an unchanged map: %v", *published)
	}
}

// TestRunDrainsAndWritesOnClose: every event sent before events closed is
// in the map Run writes last (here with the system clock: nothing waits).
func TestRunDrainsAndWritesOnClose(t *testing.T) {
	dir := t.TempDir()
	svc := newTestService(t, dir, time.Hour)
	in := make(chan grants.Event, 2)
	in <- grants.Event{Kind: grants.EventLogin, Grant: grant("192.0.2.1"), At: time.Now()}
	in <- grants.Event{Kind: grants.EventLogin, Grant: grant("192.0.2.2"), At: time.Now()}
	close(in)
	if err := svc.Run(in, nil, SystemClock{}); err != nil {
		t.Fatal(err)
	}
	if keys := mapKeys(t, dir); len(keys) != 2 {
		t.Fatalf("map after Run = %v", keys)
	}
}

// TestZeroEventNeverGrants: an Event whose Kind was left out (the zero
// value) used to be a login; it must grant nothing.
func TestZeroEventNeverGrants(t *testing.T) {
	dir := t.TempDir()
	svc := newTestService(t, dir, time.Hour)
	r := startRun(t, svc, newFakeClock(t0))
	r.send(grants.Event{Grant: grant("192.0.2.1")})
	r.send(grants.Event{})
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if keys := mapKeys(t, dir); len(keys) != 0 || svc.table.Len() != 0 {
		t.Fatalf("events without a kind granted %v", keys)
	}
}

// TestRunServesReads: a read sent to Run sees the table as the events
// before it left it, on Run's goroutine (the race detector would object
// otherwise).
func TestRunServesReads(t *testing.T) {
	svc := newTestService(t, t.TempDir(), time.Hour)
	r := startRun(t, svc, newFakeClock(t0))
	r.send(login("192.0.2.1", ""))
	r.send(login("2001:db8::1", ""))
	got := make(chan []grants.Grant)
	r.reads <- func(tb *grants.Table) { got <- tb.Grants() }
	if gs := <-got; len(gs) != 2 || gs[1].Addr != netip.MustParseAddr("2001:db8::1") {
		t.Errorf("read saw %v, want both grants", gs)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
}
