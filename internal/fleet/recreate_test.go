package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/relaygate/relaygate/internal/fleet/natstest"
	"github.com/relaygate/relaygate/internal/testutil"
)

// recreateStream deletes the stream at url and makes it again, empty, as
// an operator who resets it would.
func recreateStream(t *testing.T, url string, f *Fleet) {
	t.Helper()
	_, js := jetStreamClient(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, DefaultStream); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, f.streamConfig(1)); err != nil {
		t.Fatal(err)
	}
}

// TestFollowAfterStreamRecreated: the stream is deleted and made again
// (new sequences from 1) while a follower runs; the follower must read
// the new stream from its start, not wait for its sequences to pass
// those of the old one, and its cursor must not claim the old stream's
// sequences for the new one.
func TestFollowAfterStreamRecreated(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	pop1 := testFleet(t, srv.URL(), "pop1", "publish", t.TempDir())
	now := time.Now()
	const old = 20
	for i := range old {
		pop1.Publish(fmt.Sprintf("old-%d", i), login(i, now))
	}
	testutil.Eventually(t, 10*time.Second, "published", func() bool { return pop1.Stats().publishedOK.Load() == old })
	dir := t.TempDir()
	mx1 := testFleet(t, srv.URL(), "mx1", "follow", dir)
	var last Item
	for range old {
		last = next(t, mx1)
	}
	mx1.Durable(last.Seq)
	cursor := filepath.Join(dir, "pop-before-smtp.state"+CursorSuffix)
	testutil.Eventually(t, 5*time.Second, "cursor saved", func() bool {
		b, _ := os.ReadFile(cursor)
		s, ok := parseCursor(b)
		return ok && s.seq == last.Seq
	})

	recreateStream(t, srv.URL(), pop1)
	pop1.Publish("new-1", login(100, time.Now()))
	testutil.Eventually(t, 10*time.Second, "published on the new stream", func() bool { return pop1.Stats().publishedOK.Load() == old+1 })
	it := next(t, mx1)
	if ev, ok := mx1.Accept(it, time.Now()); !ok || ev.Addr != login(100, now).Addr || it.Seq != 1 {
		t.Fatalf("after the stream was made again: item %+v (%v), want the new stream's #1", it, ok)
	}
	mx1.Durable(it.Seq)
	testutil.Eventually(t, 5*time.Second, "cursor of the new stream saved", func() bool {
		b, _ := os.ReadFile(cursor)
		s, ok := parseCursor(b)
		return ok && s.seq == 1
	})
}

// TestHugeMessagesSkipped: on a stream whose size limit someone lifted, a
// publisher floods huge messages; the follower skips each as invalid and
// goes on to the next event (the pull's byte limit never stalls it).
func TestHugeMessagesSkipped(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	nc, js := jetStreamClient(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: DefaultStream, Subjects: []string{DefaultSubject + ".>"}, MaxMsgSize: -1}); err != nil {
		t.Fatal(err)
	}
	huge := make([]byte, int(nc.MaxPayload())-256)
	for i := range huge {
		huge[i] = 'x'
	}
	const n = 40
	for range n {
		if _, err := js.Publish(ctx, DefaultSubject+".evil", huge); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, DefaultSubject+".pop1", login(7, time.Now()).Encode()); err != nil {
		t.Fatal(err)
	}
	mx1 := testFleet(t, srv.URL(), "mx1", "follow", t.TempDir())
	for i := range n {
		if it := next(t, mx1); it.Err == nil {
			t.Fatalf("huge message %d decoded", i)
		}
	}
	if ev, ok := mx1.Accept(next(t, mx1), time.Now()); !ok || ev.Addr != login(7, time.Now()).Addr {
		t.Fatalf("the event after the huge messages: %v %v", ev, ok)
	}
}
