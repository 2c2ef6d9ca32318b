package fleet

import (
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/internal/fleet/natstest"
)

// BenchmarkFleetR3 measures grant events through JetStream R3 on three
// local nats-server processes (Debian's 2.9.10): publish is from Publish
// until the stream acknowledged every event (the outbox's fsync
// included); follow is a follower reading them back. docs/BENCHMARKS.md
// and docs/FLEET.md quote it:
//
//	go test ./internal/fleet -run '^$' -bench FleetR3 -benchtime 20000x
func BenchmarkFleetR3(b *testing.B) {
	servers := natstest.StartCluster(b, 3, natstest.Options{})
	urls := natstest.URLs(servers)
	dir := b.TempDir()
	start := func(name, mode string) *Fleet {
		c := Config{URLs: urls, Stream: DefaultStream, Subject: DefaultSubject, Name: name, Mode: mode,
			CatchUp: 30 * time.Second, OutboxMax: 1 << 22, StatePath: dir + "/" + name + ".state", Grace: 30 * time.Minute}
		f, err := Start(c, nopLogger, time.Now)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(f.Close)
		return f
	}
	pub := start("pop1", "publish")
	// The stream exists, R3, with a leader, before timing.
	pub.Publish("warm-up", login(0, time.Now()))
	waitFor(b, 60*time.Second, func() bool { return pub.Stats().publishedOK.Load() == 1 })
	now := time.Now()
	b.Run("publish", func(b *testing.B) {
		run := time.Now().UnixNano() // ids of their own: -count repeats within the duplicate window
		base := pub.Stats().publishedOK.Load()
		b.ResetTimer()
		for i := range b.N {
			for len(pub.in) > cap(pub.in)/2 {
				time.Sleep(100 * time.Microsecond) // as fast as the outbox takes them
			}
			pub.Publish(fmt.Sprintf("ev-%d-%d", run, i), login(i, now))
		}
		waitFor(b, time.Minute, func() bool { return pub.Stats().publishedOK.Load()-base == int64(b.N) })
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("follow", func(b *testing.B) {
		run := time.Now().UnixNano()
		base := pub.Stats().publishedOK.Load()
		for i := range b.N {
			for len(pub.in) > cap(pub.in)/2 {
				time.Sleep(100 * time.Microsecond)
			}
			pub.Publish(fmt.Sprintf("fw-%d-%d", run, i), login(i, now))
		}
		waitFor(b, time.Minute, func() bool { return pub.Stats().publishedOK.Load()-base == int64(b.N) })
		b.ResetTimer()
		mx := start(fmt.Sprintf("mx%d", run), "follow")
		n := 0
		res := mx.CatchUp(func(Item) { n++ })
		if !res.Complete {
			b.Fatalf("catch-up incomplete: %+v", res)
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	})
}

func waitFor(b *testing.B, within time.Duration, cond func() bool) {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatal("timed out")
		}
		if time.Since(deadline.Add(-within)) > 10*time.Second && time.Now().Second()%10 == 0 {
			time.Sleep(time.Second)
		}
		time.Sleep(time.Millisecond)
	}
}

var nopLogger = zerolog.Nop()
