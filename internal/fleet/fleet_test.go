package fleet

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/internal/fleet/natstest"
	"github.com/relaygate/relaygate/internal/testutil"
)

// jetStreamClient connects a plain client to urls, closed when the test
// ends, and returns it with its JetStream API.
func jetStreamClient(t *testing.T, urls string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// testFleet starts a Fleet named name on urls, its files in dir.
func testFleet(t *testing.T, urls, name, mode, dir string, edit ...func(*Config)) *Fleet {
	t.Helper()
	c := Config{
		URLs: urls, Stream: DefaultStream, Subject: DefaultSubject, Name: name, Mode: mode,
		CatchUp: 30 * time.Second, OutboxMax: 10000, // the tests' catch-ups complete; a loaded machine is slow
		StatePath: filepath.Join(dir, "pop-before-smtp.state"), Grace: 30 * time.Minute,
	}
	for _, e := range edit {
		e(&c)
	}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	f, err := Start(c, zerolog.Nop(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func login(i int, at time.Time) Event {
	return Event{Kind: KindLogin, Addr: netip.AddrFrom4([4]byte{198, 51, byte(100 + i>>8), byte(i)}), User: fmt.Sprintf("u%d", i), Daemon: "dovecot", Host: "pop1", At: at}
}

// next reads one item, or fails after a while.
func next(t *testing.T, f *Fleet) Item {
	t.Helper()
	select {
	case it, ok := <-f.Items():
		if !ok {
			t.Fatal("items closed")
		}
		return it
	case <-time.After(15 * time.Second):
		t.Fatal("no item within 15 s")
	}
	return Item{}
}

func streamInfo(t *testing.T, url string, opts ...nats.Option) *jetstream.StreamInfo {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo()
}

// TestPublishFollowSkipOwnAndDedup: two relaygates see the same login
// (one log host feeding both) and publish it: the stream keeps one event;
// a follower applies each login once; a publisher skips its own events.
func TestPublishFollowSkipOwnAndDedup(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	pop1 := testFleet(t, srv.URL(), "pop1", "both", t.TempDir())
	pop2 := testFleet(t, srv.URL(), "pop2", "both", t.TempDir())
	mx1 := testFleet(t, srv.URL(), "mx1", "follow", t.TempDir())
	now := time.Now()
	same := SyslogID("pop1", "dovecot", "812", "imap-login: Login: user=<u1>, rip=198.51.100.1", now)
	pop1.Publish(same, login(1, now))
	testutil.Eventually(t, 10*time.Second, "pop1's event stored", func() bool { return pop1.Stats().publishedOK.Load() == 1 })
	pop2.Publish(same, login(1, now.Add(3*time.Millisecond)))
	pop2.Publish("other", login(2, now))
	testutil.Eventually(t, 10*time.Second, "pop2's events acknowledged", func() bool {
		return pop2.Stats().publishedDup.Load() == 1 && pop2.Stats().publishedOK.Load() == 1
	})
	if n := streamInfo(t, srv.URL()).State.Msgs; n != 2 {
		t.Fatalf("the stream holds %d events, want 2 (the login both saw is one)", n)
	}
	a, b := next(t, mx1), next(t, mx1)
	for i, it := range []Item{a, b} {
		ev, ok := mx1.Accept(it, time.Now())
		if !ok || it.Own || ev.Addr != login(i+1, now).Addr {
			t.Fatalf("mx1 item %d: %+v → %v %v", i, it, ev, ok)
		}
	}
	// pop1 reads its own event (skipped) and pop2's.
	own, other := next(t, pop1), next(t, pop1)
	if !own.Own || other.Own {
		t.Fatalf("pop1 reads own=%v then own=%v", own.Own, other.Own)
	}
	if _, ok := pop1.Accept(own, time.Now()); ok || pop1.Stats().own.Load() != 1 {
		t.Fatal("pop1 applied its own event")
	}
	if pop1.Stats().outbox.Load() != 0 {
		t.Fatalf("acknowledged events still in the outbox: %d", pop1.Stats().outbox.Load())
	}
}

// TestEngineDownBuffersAndRecovers: with the server down, events wait in
// the outbox file; when it is back they go out and reach a follower.
func TestEngineDownBuffersAndRecovers(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	dir := t.TempDir()
	pop1 := testFleet(t, srv.URL(), "pop1", "publish", dir)
	mx1 := testFleet(t, srv.URL(), "mx1", "follow", t.TempDir())
	pop1.Publish("first", login(0, time.Now())) // the stream exists before the outage
	testutil.Eventually(t, 10*time.Second, "first event stored", func() bool { return pop1.Stats().publishedOK.Load() == 1 })
	next(t, mx1)

	srv.Stop()
	testutil.Eventually(t, 10*time.Second, "disconnected", func() bool { return !pop1.Stats().connected.Load() })
	const n = 200
	for i := 1; i <= n; i++ {
		pop1.Publish(fmt.Sprintf("ev-%d", i), login(i, time.Now()))
	}
	testutil.Eventually(t, 10*time.Second, "events in the outbox", func() bool { return pop1.Stats().outbox.Load() == n })
	b, err := os.ReadFile(filepath.Join(dir, "pop-before-smtp.state"+OutboxSuffix))
	if err != nil || strings.Count(string(b), "\n") != n {
		t.Fatalf("the outbox file holds %d lines (%v), want %d", strings.Count(string(b), "\n"), err, n)
	}
	srv.Start()
	testutil.Eventually(t, 20*time.Second, "outbox drained", func() bool { return pop1.Stats().outbox.Load() == 0 })
	seen := map[netip.Addr]bool{}
	for len(seen) < n {
		it := next(t, mx1)
		if ev, ok := mx1.Accept(it, time.Now()); ok {
			seen[ev.Addr] = true
		}
	}
	if r := pop1.Stats().reconnects.Load(); r < 1 {
		t.Errorf("reconnects %d", r)
	}
}

// TestCatchUpReplaysTheWindow: a relaygate that starts reads every event
// still in the window before anything else; older logins are stale.
func TestCatchUpReplaysTheWindow(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	pop1 := testFleet(t, srv.URL(), "pop1", "publish", t.TempDir())
	now := time.Now()
	for i := range 50 {
		pop1.Publish(fmt.Sprintf("fresh-%d", i), login(i, now))
	}
	for i := 50; i < 55; i++ {
		pop1.Publish(fmt.Sprintf("old-%d", i), login(i, now.Add(-2*time.Hour)))
	}
	testutil.Eventually(t, 10*time.Second, "published", func() bool { return pop1.Stats().publishedOK.Load() == 55 })

	mx1 := testFleet(t, srv.URL(), "mx1", "follow", t.TempDir())
	applied := 0
	res := mx1.CatchUp(func(it Item) {
		if _, ok := mx1.Accept(it, time.Now()); ok {
			applied++
		}
	})
	if !res.Complete || res.Events != 55 || applied != 50 || mx1.Stats().stale.Load() != 5 {
		t.Fatalf("catch-up %+v: applied %d, stale %d; want complete, 55 read, 50 applied, 5 stale", res, applied, mx1.Stats().stale.Load())
	}
	t.Logf("catch-up of 55 events took %s", res.Took)
	// Nothing more waits.
	select {
	case it := <-mx1.Items():
		t.Fatalf("an item after the catch-up: %+v", it)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestCatchUpEmptyAndUnreachable: an empty stream is caught up at once;
// an unreachable fleet is given up on after -nats-catchup, and followed
// once it is there.
func TestCatchUpEmptyAndUnreachable(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	pop1 := testFleet(t, srv.URL(), "pop1", "both", t.TempDir())
	if res := pop1.CatchUp(func(Item) {}); !res.Complete || res.Events != 0 || res.Took > 10*time.Second {
		t.Fatalf("empty stream: %+v", res)
	}
	ports := natstest.FreePorts(t, 1)
	down := fmt.Sprintf("nats://127.0.0.1:%d", ports[0])
	mx1 := testFleet(t, down, "mx1", "follow", t.TempDir(), func(c *Config) { c.CatchUp = 300 * time.Millisecond })
	if res := mx1.CatchUp(func(Item) {}); res.Complete || res.Took > 10*time.Second { // given up after 300 ms, not after a connect timeout
		t.Fatalf("unreachable: %+v", res)
	}
}

// TestCursorResume: a restarted follower resumes after the last event it
// made durable, not at the start of the window.
func TestCursorResume(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	pop1 := testFleet(t, srv.URL(), "pop1", "publish", t.TempDir())
	now := time.Now()
	for i := range 10 {
		pop1.Publish(fmt.Sprintf("a-%d", i), login(i, now))
	}
	testutil.Eventually(t, 10*time.Second, "published", func() bool { return pop1.Stats().publishedOK.Load() == 10 })
	dir := t.TempDir()
	mx1 := testFleet(t, srv.URL(), "mx1", "follow", dir)
	var items []Item
	for range 10 {
		items = append(items, next(t, mx1))
	}
	mx1.Durable(items[6].Seq) // the state file holds the first seven
	cursor := filepath.Join(dir, "pop-before-smtp.state"+CursorSuffix)
	testutil.Eventually(t, 5*time.Second, "cursor saved", func() bool {
		b, _ := os.ReadFile(cursor)
		s, ok := parseCursor(b)
		return ok && s.seq == items[6].Seq
	})
	mx1.Close()

	mx1 = testFleet(t, srv.URL(), "mx1", "follow", dir)
	if it := next(t, mx1); it.Seq != items[7].Seq {
		t.Fatalf("resumed at #%d, want #%d", it.Seq, items[7].Seq)
	}
	if st := mx1.Status(); !strings.Contains(st.Start, "after #") {
		t.Fatalf("status start %q", st.Start)
	}
}

func TestAcceptClassifies(t *testing.T) {
	f := &Fleet{cfg: Config{Grace: time.Minute}, items: make(chan Item)}
	now := time.Now()
	if _, ok := f.Accept(Item{Seq: 1, Own: true}, now); ok {
		t.Error("own applied")
	}
	if _, ok := f.Accept(Item{Seq: 2, Err: errAddr}, now); ok {
		t.Error("invalid applied")
	}
	if _, ok := f.Accept(Item{Seq: 3, Event: login(1, now.Add(-time.Minute))}, now); ok {
		t.Error("a login grace ago applied")
	}
	ev, ok := f.Accept(Item{Seq: 4, Event: login(1, now.Add(30*time.Second))}, now)
	if !ok || !ev.At.Equal(now) {
		t.Errorf("a login dated 30 s ahead: %v %v; want it at now", ev.At, ok)
	}
	// An hour ahead, taken as now, would grant grace from now each time
	// it is read again (a copy put back into the stream): refused.
	if _, ok := f.Accept(Item{Seq: 5, Event: login(1, now.Add(time.Hour))}, now); ok {
		t.Error("a login dated an hour ahead applied")
	}
	s := &f.stats
	if s.own.Load() != 1 || s.invalid.Load() != 2 || s.stale.Load() != 1 || s.applied.Load() != 1 || s.appliedSeq.Load() != 5 {
		t.Errorf("counters own %d invalid %d stale %d applied %d seq %d", s.own.Load(), s.invalid.Load(), s.stale.Load(), s.applied.Load(), s.appliedSeq.Load())
	}
}
