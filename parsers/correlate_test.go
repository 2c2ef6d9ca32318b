package parsers

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)

func msg(host, program, pid string) Message {
	return Message{Host: host, Program: program, PID: pid}
}

func connectEv(addr string) Event {
	return Event{Kind: Connect, Addr: netip.MustParseAddr(addr), Daemon: "popa3d"}
}

func authEv(user string) Event { return Event{Kind: Auth, User: user, Daemon: "popa3d"} }

var failEv = Event{Kind: Fail, Daemon: "popa3d"}

// step is one Feed and what must come of it: the granted address ("" for
// ok=false) and a substring of the note.
type step struct {
	m     Message
	ev    Event
	at    time.Duration // after t0
	grant string
	note  string
}

func runSteps(t *testing.T, c *Correlator, steps []step) {
	t.Helper()
	for i, s := range steps {
		out, ok, note := c.feed(s.m, s.ev, t0.Add(s.at))
		got := ""
		if ok {
			got = out.Addr.String()
			if !out.Addr.IsValid() {
				got = "-"
			}
		}
		if got != s.grant {
			t.Errorf("step %d (%v %v): granted %q, want %q (note %q)", i, s.ev.Kind, s.m, got, s.grant, note)
		}
		if !strings.Contains(note, s.note) {
			t.Errorf("step %d (%v %v): note %q, want it to contain %q", i, s.ev.Kind, s.m, note, s.note)
		}
		if !ok && note == "" {
			t.Errorf("step %d: ok=false without a note", i)
		}
	}
}

func TestCorrelatorJoin(t *testing.T) {
	c := NewCorrelator(10, time.Minute)
	m := msg("mx1", "popa3d", "123")
	runSteps(t, c, []step{
		{m, connectEv("192.0.2.10"), 0, "", "remembered 192.0.2.10 for mx1 popa3d[123]"},
		{m, authEv("alice"), time.Second, "192.0.2.10", "joined with 192.0.2.10"},
		// The entry is used up: a second success line grants nothing.
		{m, authEv("alice"), 2 * time.Second, "", "no address line seen for mx1 popa3d[123]"},
	})
	if c.pending() != 0 {
		t.Errorf("Len = %d after the join, want 0", c.pending())
	}
	c.feed(m, connectEv("192.0.2.10"), t0)
	out, ok, _ := c.feed(m, Event{Kind: Auth, User: "bob", Daemon: "gnu-pop3d", Session: "s1"}, t0)
	want := Event{Kind: Login, Addr: netip.MustParseAddr("192.0.2.10"), User: "bob", Daemon: "gnu-pop3d", Session: "s1"}
	if !ok || out != want {
		t.Errorf("joined event = %+v, %v; want %+v", out, ok, want)
	}
}

func TestCorrelatorInterleaved(t *testing.T) {
	c := NewCorrelator(10, time.Minute)
	a, b := msg("mx1", "popa3d", "100"), msg("mx1", "popa3d", "101")
	other := msg("mx2", "popa3d", "100")
	runSteps(t, c, []step{
		{a, connectEv("192.0.2.10"), 0, "", "remembered"},
		{b, connectEv("2001:db8::1"), 0, "", "remembered"},
		{other, authEv("x"), time.Second, "", "no address line seen for mx2 popa3d[100]"},
		{msg("mx1", "spop3d", "100"), authEv("x"), time.Second, "", "no address line"},
		{b, authEv("bob"), 2 * time.Second, "2001:db8::1", ""},
		{a, authEv("alice"), 3 * time.Second, "192.0.2.10", ""},
	})
}

func TestCorrelatorReplace(t *testing.T) {
	c := NewCorrelator(10, time.Minute)
	m := msg("mx1", "popa3d", "7")
	runSteps(t, c, []step{
		{m, connectEv("192.0.2.1"), 0, "", "remembered 192.0.2.1"},
		{m, connectEv("192.0.2.2"), time.Second, "", "(replacing 192.0.2.1)"},
		{m, authEv("a"), 2 * time.Second, "192.0.2.2", ""},
	})
	if c.pending() != 0 || c.evictions() != 0 {
		t.Errorf("Len %d, Evicted %d; want 0, 0", c.pending(), c.evictions())
	}
}

func TestCorrelatorFailClears(t *testing.T) {
	c := NewCorrelator(10, time.Minute)
	m := msg("mx1", "popa3d", "9")
	runSteps(t, c, []step{
		{m, failEv, 0, "", "nothing remembered for mx1 popa3d[9]"},
		{m, connectEv("203.0.113.66"), 0, "", "remembered"},
		{m, failEv, time.Second, "", "forgot mx1 popa3d[9]"},
		{m, authEv("mallory"), 2 * time.Second, "", "no address line seen"},
	})
}

func TestCorrelatorForget(t *testing.T) {
	c := NewCorrelator(10, time.Minute)
	m := msg("mx1", "popa3d", "9")
	c.feed(m, connectEv("192.0.2.1"), t0)
	if note := c.forget(msg("mx1", "popa3d", "")); note != "" {
		t.Errorf("Forget without a PID = %q", note)
	}
	if note := c.forget(m); note != "forgot mx1 popa3d[9]" {
		t.Errorf("Forget = %q", note)
	}
	if note := c.forget(m); note != "" {
		t.Errorf("second Forget = %q", note)
	}
	runSteps(t, c, []step{{m, authEv("a"), 0, "", "no address line"}})
}

func TestCorrelatorPassThrough(t *testing.T) {
	c := NewCorrelator(10, time.Minute)
	m := msg("mx1", "popa3d", "5")
	login := Event{Kind: Login, Addr: netip.MustParseAddr("192.0.2.5"), User: "a", Daemon: "popa3d"}
	logout := Event{Kind: Logout, User: "a", Daemon: "dovecot", Session: "S"}
	for _, ev := range []Event{login, logout} {
		out, ok, _ := c.feed(msg("mx1", "dovecot", ""), ev, t0)
		if !ok || out != ev {
			t.Errorf("Feed(%+v) = %+v, %v; want it passed through", ev, out, ok)
		}
	}
	// A Login of a process that also logged an address line (the patched
	// popa3d) ends that line.
	c.feed(m, connectEv("192.0.2.5"), t0)
	out, ok, note := c.feed(m, login, t0)
	if !ok || out != login || !strings.Contains(note, "forgot") {
		t.Errorf("Feed(login) = %+v, %v, %q", out, ok, note)
	}
	runSteps(t, c, []step{{m, authEv("a"), 0, "", "no address line"}})

	_, ok, note = c.feed(m, Event{}, t0)
	if ok || note == "" {
		t.Errorf("zero event: ok %v, note %q", ok, note)
	}
}

func TestCorrelatorNoPID(t *testing.T) {
	c := NewCorrelator(10, time.Minute)
	m := msg("mx1", "popa3d", "")
	runSteps(t, c, []step{
		{m, connectEv("192.0.2.1"), 0, "", "no PID on mx1 popa3d"},
		{m, authEv("a"), 0, "", "no PID"},
		{m, failEv, 0, "", "nothing remembered"},
	})
	if c.pending() != 0 {
		t.Errorf("Len = %d, want 0", c.pending())
	}
}

func TestCorrelatorAuthWithoutConnect(t *testing.T) {
	c := NewCorrelator(10, time.Minute)
	runSteps(t, c, []step{
		{msg("mx1", "popa3d", "1"), authEv("a"), 0, "", "no address line seen for mx1 popa3d[1]"},
		{msg("", "popa3d", "1"), authEv("a"), 0, "", "no address line seen for popa3d[1]"},
	})
}

func TestCorrelatorMaxAge(t *testing.T) {
	c := NewCorrelator(10, time.Minute)
	a, b := msg("mx1", "popa3d", "1"), msg("mx1", "popa3d", "2")
	runSteps(t, c, []step{
		{a, connectEv("192.0.2.1"), 0, "", "remembered"},
		// Exactly maxAge old still counts.
		{a, authEv("a"), time.Minute, "192.0.2.1", ""},
		{a, connectEv("192.0.2.1"), 2 * time.Minute, "", "remembered"},
		{b, connectEv("192.0.2.2"), 2*time.Minute + 30*time.Second, "", "remembered"},
		// Lazy expiry from the old end: a's entry is gone, b's is not.
		{msg("mx1", "popa3d", "3"), failEv, 3*time.Minute + time.Second, "", "nothing remembered"},
	})
	if c.pending() != 1 {
		t.Errorf("Len = %d after expiry, want 1", c.pending())
	}
	runSteps(t, c, []step{
		{a, authEv("a"), 3*time.Minute + time.Second, "", "no address line seen"},
		{b, authEv("b"), 3*time.Minute + 30*time.Second, "192.0.2.2", ""},
	})

	// A clock that goes backwards leaves an entry out of order in the list;
	// the Auth still checks its age and grants nothing.
	c = NewCorrelator(10, time.Minute)
	runSteps(t, c, []step{
		{a, connectEv("192.0.2.1"), 10 * time.Minute, "", "remembered"},
		{b, connectEv("192.0.2.2"), 0, "", "remembered"},
		{b, authEv("b"), 2 * time.Minute, "", "older than 1m0s"},
		{a, authEv("a"), 10*time.Minute + time.Second, "192.0.2.1", ""},
	})
	if c.pending() != 0 {
		t.Errorf("Len = %d, want 0", c.pending())
	}
}

func TestCorrelatorCapEviction(t *testing.T) {
	const capacity, flood = 1000, 100000
	c := NewCorrelator(capacity, time.Hour)
	addr := netip.MustParseAddr("203.0.113.66")
	for i := 0; i < flood; i++ {
		m := msg("mx1", "popa3d", strconv.Itoa(i))
		if _, ok, _ := c.feed(m, Event{Kind: Connect, Addr: addr, Daemon: "popa3d"}, t0); ok {
			t.Fatal("a Connect produced an event")
		}
		if c.pending() > capacity {
			t.Fatalf("Len = %d after %d connects, cap %d", c.pending(), i+1, capacity)
		}
	}
	if c.pending() != capacity {
		t.Errorf("Len = %d, want %d", c.pending(), capacity)
	}
	if c.evictions() != flood-capacity {
		t.Errorf("Evicted = %d, want %d", c.evictions(), flood-capacity)
	}
	if len(c.nodes) > capacity {
		t.Errorf("%d nodes allocated for a cap of %d", len(c.nodes), capacity)
	}
	// The oldest were evicted, the newest are still there.
	if _, ok, _ := c.feed(msg("mx1", "popa3d", "0"), authEv("a"), t0); ok {
		t.Error("the oldest entry survived the flood")
	}
	out, ok, _ := c.feed(msg("mx1", "popa3d", strconv.Itoa(flood-1)), authEv("a"), t0)
	if !ok || out.Addr != addr {
		t.Errorf("the newest entry: %+v, %v", out, ok)
	}
	// A replacement is not an eviction.
	before := c.evictions()
	m := msg("mx1", "popa3d", strconv.Itoa(flood-2))
	c.feed(m, connectEv("192.0.2.1"), t0)
	if c.evictions() != before {
		t.Errorf("replacing an entry counted as an eviction")
	}
	// The Auth above made room for one; the second new process evicts.
	c.feed(msg("mx1", "popa3d", "new1"), connectEv("192.0.2.2"), t0)
	_, _, note := c.feed(msg("mx1", "popa3d", "new2"), connectEv("192.0.2.2"), t0)
	if !strings.Contains(note, "table full: evicted mx1 popa3d[") {
		t.Errorf("note on eviction = %q", note)
	}
}

func TestCorrelatorTinyCap(t *testing.T) {
	c := NewCorrelator(0, time.Minute) // taken as 1
	a, b := msg("h", "p", "1"), msg("h", "p", "2")
	runSteps(t, c, []step{
		{a, connectEv("192.0.2.1"), 0, "", "remembered"},
		{b, connectEv("192.0.2.2"), 0, "", "evicted h p[1]"},
		{a, authEv("a"), 0, "", "no address line"},
		{b, authEv("b"), 0, "192.0.2.2", ""},
	})
}

// The table keeps its own copy of the key, not a view into the caller's
// buffer.
func TestCorrelatorKeyCopy(t *testing.T) {
	c := NewCorrelator(10, time.Minute)
	buf := []byte("mx1popa3d42")
	m := Message{Host: string(buf[:3]), Program: string(buf[3:9]), PID: string(buf[9:])}
	c.feed(m, connectEv("192.0.2.1"), t0)
	for k := range c.byKey {
		if k != (corrKey{"mx1", "popa3d", "42"}) {
			t.Errorf("key %+v", k)
		}
	}
	// Program tags are compared as the Set dispatches them.
	out, ok, _ := c.feed(msg("mx1", "PopA3d", "42"), authEv("a"), t0)
	if !ok || out.Addr.String() != "192.0.2.1" {
		t.Errorf("upper-case program: %+v, %v", out, ok)
	}
}

func BenchmarkCorrelator(b *testing.B) {
	const pids = 4096
	const lag = 64 // processes between a Connect and its Auth
	c := NewCorrelator(1000, 10*time.Minute)
	msgs := make([]Message, pids)
	for i := range msgs {
		msgs[i] = msg("mx1", "popa3d", strconv.Itoa(10000+i))
	}
	conn := Event{Kind: Connect, Addr: netip.MustParseAddr("192.0.2.10"), Daemon: "popa3d"}
	auth := authEv("alice")
	b.ReportAllocs()
	b.ResetTimer()
	grants := 0
	for i := 0; i < b.N; i++ {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		c.feed(msgs[i%pids], conn, now)
		if _, ok, _ := c.feed(msgs[(i+pids-lag)%pids], auth, now); ok {
			grants++
		}
	}
	if b.N > 2*lag && grants == 0 {
		b.Fatal("no grants")
	}
}
