package fleet

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relaygate/relaygate/internal/fleet/natstest"
	"github.com/relaygate/relaygate/internal/testutil"
)

// TestAPIWait: the follower's wait for the JetStream API stays short
// through an election's unanswered requests, then grows for a server
// that is only slow, never past maxAPIWait; an answer (or a refusal,
// which is an answer) brings it back.
func TestAPIWait(t *testing.T) {
	w := newAPIWait()
	for i := range expiredRun - 1 {
		if w.after(context.DeadlineExceeded); w.d != minAPIWait {
			t.Fatalf("after %d expired waits: %s, want %s", i+1, w.d, minAPIWait)
		}
	}
	if w.after(nats.ErrTimeout); w.d != 2*minAPIWait {
		t.Fatalf("after %d expired waits: %s, want %s", expiredRun, w.d, 2*minAPIWait)
	}
	for range 10 * expiredRun {
		w.after(fmt.Errorf("create a consumer: %w", context.DeadlineExceeded))
	}
	if w.d != maxAPIWait {
		t.Fatalf("after many expired waits: %s, want %s", w.d, maxAPIWait)
	}
	if err := w.after(jetstream.ErrStreamNotFound); !errors.Is(err, jetstream.ErrStreamNotFound) || w.d != maxAPIWait {
		t.Fatalf("a refusal: %v, wait %s; want the error back and the wait unchanged", err, w.d)
	}
	if w.after(nil); w.d != minAPIWait || w.expired != 0 {
		t.Fatalf("after an answer: %s (%d expired), want %s", w.d, w.expired, minAPIWait)
	}
}

// TestConsumerLostMadeAgain: the follower's consumer disappears from the
// server (its server was lost, or an operator deleted it); the follower
// makes another after the last message it handed on: the next events
// arrive, none is handed on twice, and the lost consumer's replacement
// is the only one left. Made again after a reconnection, the follower
// deletes the consumer it leaves rather than let it linger on the server.
func TestConsumerLostMadeAgain(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	pop1 := testFleet(t, srv.URL(), "pop1", "publish", t.TempDir())
	now := time.Now()
	pop1.Publish("a-0", login(0, now))
	testutil.Eventually(t, 10*time.Second, "published", func() bool { return pop1.Stats().publishedOK.Load() == 1 })
	mx1 := testFleet(t, srv.URL(), "mx1", "follow", t.TempDir())
	if it := next(t, mx1); it.Seq != 1 {
		t.Fatalf("first item #%d, want #1", it.Seq)
	}

	_, js := jetStreamClient(t, srv.URL())
	consumers := func() []string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, DefaultStream)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		l := st.ConsumerNames(ctx)
		for n := range l.Name() {
			names = append(names, n)
		}
		return names
	}
	lost := consumers()
	if len(lost) != 1 {
		t.Fatalf("consumers %v, want the follower's one", lost)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := js.DeleteConsumer(ctx, DefaultStream, lost[0]); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "a new consumer", func() bool {
		c := consumers()
		return len(c) == 1 && c[0] != lost[0]
	})
	for i := 1; i <= 3; i++ {
		pop1.Publish(fmt.Sprintf("a-%d", i), login(i, now))
	}
	for want := uint64(2); want <= 4; want++ {
		if it := next(t, mx1); it.Seq != want {
			t.Fatalf("after the consumer was lost: item #%d, want #%d", it.Seq, want)
		}
	}
	replaced := consumers()
	mx1.refollow <- struct{}{} // as a reconnection does
	testutil.Eventually(t, 10*time.Second, "the replaced consumer deleted, a new one made", func() bool {
		c := consumers()
		return len(c) == 1 && c[0] != replaced[0]
	})
	pop1.Publish("a-4", login(4, now))
	if it := next(t, mx1); it.Seq != 5 {
		t.Fatalf("after following again: item #%d, want #5", it.Seq)
	}
}

// TestCatchUpAfterConsumerMadeAgain: the follower has handed on every
// event the stream held at its start, but the catch-up has not read them
// yet (the daemon is still loading its state), when its consumer is made
// again (a reconnection, missed heartbeats, a gap). The new consumer has
// nothing pending; the catch-up must still apply the events the first
// one delivered before it says it is complete.
func TestCatchUpAfterConsumerMadeAgain(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	pop1 := testFleet(t, srv.URL(), "pop1", "publish", t.TempDir())
	now := time.Now()
	const n = 5
	for i := range n {
		pop1.Publish(fmt.Sprintf("a-%d", i), login(i, now))
	}
	testutil.Eventually(t, 10*time.Second, "published", func() bool { return pop1.Stats().publishedOK.Load() == n })
	mx1 := testFleet(t, srv.URL(), "mx1", "follow", t.TempDir())
	testutil.Eventually(t, 10*time.Second, "every event handed on", func() bool { return len(mx1.items) == n })
	mx1.refollow <- struct{}{} // as a reconnection does
	testutil.Eventually(t, 10*time.Second, "the consumer made again", func() bool {
		p := mx1.started.Load()
		return p != nil && *p == fmt.Sprintf("after #%d", n)
	})
	var seqs []uint64
	res := mx1.CatchUp(func(it Item) { seqs = append(seqs, it.Seq) })
	if !res.Complete || res.Events != n || res.Last != n {
		t.Fatalf("catch-up %+v (items %v), want complete with the %d events up to #%d", res, seqs, n, n)
	}
}
