package fleet

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/fleet/natstest"
	"github.com/relaygate/relaygate/internal/testutil"
)

// TestNextAckWait: a batch whose acknowledgements did not come in time
// doubles the next batch's wait, never past the ackTimeout; a batch
// acknowledged in full brings it back to the least; a batch refused
// (no stream leader yet) leaves it.
func TestNextAckWait(t *testing.T) {
	least, most := 2*time.Second, 5*time.Second
	for _, c := range []struct {
		cur               time.Duration
		expired, allAcked bool
		want              time.Duration
	}{
		{least, true, false, 4 * time.Second},
		{4 * time.Second, true, false, most},
		{most, true, false, most},
		{most, false, false, most},
		{most, false, true, least},
		{4 * time.Second, true, true, most}, // late acks still count as expired
	} {
		if got := nextAckWait(c.cur, least, most, c.expired, c.allAcked); got != c.want {
			t.Errorf("nextAckWait(%s, expired %v, all acked %v) = %s, want %s", c.cur, c.expired, c.allAcked, got, c.want)
		}
	}
}

// TestUnacknowledgedSentAgain: the stream does not acknowledge (here a
// plain subscriber swallows the events, as a stream leader that died
// would); the batch's wait expires, the events stay in the outbox and
// are sent again until the stream takes them, each stored once.
func TestUnacknowledgedSentAgain(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	nc, js := jetStreamClient(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	probe := &Fleet{cfg: Config{Stream: DefaultStream, Subject: DefaultSubject, Grace: 30 * time.Minute}}
	cfg := probe.streamConfig(1)
	cfg.Subjects = []string{"elsewhere.>"}
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	swallow, err := nc.SubscribeSync(DefaultSubject + ".pop1")
	if err != nil {
		t.Fatal(err)
	}
	pop1 := testFleet(t, srv.URL(), "pop1", "publish", t.TempDir(), func(c *Config) {
		c.ackTimeout, c.ackWaitMin = 2*time.Second, 100*time.Millisecond
	})
	const n = 5
	for i := range n {
		pop1.Publish(fmt.Sprintf("u-%d", i), login(i, time.Now()))
	}
	testutil.Eventually(t, 10*time.Second, "sent twice, unacknowledged", func() bool {
		m, _, _ := swallow.Pending()
		return m >= 2*n && pop1.Stats().publishErrors.Load() >= 2*n
	})
	if got := pop1.Stats().outbox.Load(); got != n {
		t.Fatalf("outbox %d, want the %d unacknowledged events", got, n)
	}
	if err := swallow.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	cfg.Subjects = []string{DefaultSubject + ".>"}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	// An ack later than the (short) ack wait is dropped and the event sent
	// again, its second ack counted as a duplicate: either way every
	// event is acknowledged once the outbox is empty, and the stream's
	// count below proves none is stored twice.
	testutil.Eventually(t, 20*time.Second, "acknowledged", func() bool {
		st := pop1.Stats()
		return st.outbox.Load() == 0 && st.publishedOK.Load()+st.publishedDup.Load() >= n
	})
	if msgs := streamInfo(t, srv.URL()).State.Msgs; msgs != n {
		t.Fatalf("stream holds %d messages, want %d", msgs, n)
	}
}
