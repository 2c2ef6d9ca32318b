package daemon

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relaygate/relaygate/internal/fleet"
	"github.com/relaygate/relaygate/internal/fleet/natstest"
	"github.com/relaygate/relaygate/internal/testutil"
)

// cursorOf reads a follower's cursor file: the stream's creation time and
// the durable sequence.
func cursorOf(t *testing.T, path string) (created, seq int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 6 {
		t.Fatalf("cursor %q", b)
	}
	created, _ = strconv.ParseInt(f[3], 10, 64)
	seq, _ = strconv.ParseInt(f[4], 10, 64)
	return created, seq
}

// TestFleetStreamRecreated: the stream is deleted and made again while a
// follower runs. The new stream's events are granted at once (not once
// its sequences pass the old one's), and the cursor never claims the
// old stream's sequences as durable for the new one: a restart would
// skip the new stream's events up to there.
func TestFleetStreamRecreated(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	publishLogins(t, srv.URL(), 30, time.Now())
	cfg := fleetConfig(t, srv.URL(), "mx1", "follow")
	mx, _ := launch(t, cfg)
	cursor := cfg.StatePath + fleet.CursorSuffix
	testutil.Eventually(t, 10*time.Second, "the cursor at #30", func() bool { _, s := cursorOf(t, cursor); return s == 30 })
	oldCreated, _ := cursorOf(t, cursor)

	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, fleet.DefaultStream); err != nil {
		t.Fatal(err)
	}
	addrs := publishLogins(t, srv.URL(), 31, time.Now()) // makes the stream again: #1 to #31
	testutil.Eventually(t, 15*time.Second, "the new stream's last login granted", func() bool { return mx.Granted(addrs[30]) })
	testutil.Eventually(t, 10*time.Second, "the cursor of the new stream", func() bool {
		c, s := cursorOf(t, cursor)
		if c == oldCreated && s > 30 {
			t.Fatalf("the cursor says #%d of the old stream", s)
		}
		return c != oldCreated && s == 31
	})
}
