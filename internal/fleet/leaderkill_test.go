package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/internal/fleet/natstest"
	"github.com/relaygate/relaygate/internal/testutil"
)

// TestStreamLeaderKilled: the stream leader of an R3 cluster is killed
// while two relaygates publish; every follower must still get every
// event, and hand on the stream's messages in order, each once (it makes
// its consumer again after the last one it handed on). With
// RELAYGATE_TIMELINE=1 it also logs when each step happened (kill, new
// leader, first PubAck after the kill, first event followed after it),
// for docs/FLEET.md; it asserts no timing.
func TestStreamLeaderKilled(t *testing.T) {
	tc := startTimelineCluster(t)
	servers, verbose, admin, start := tc.servers, tc.verbose, tc.admin, tc.start
	t0 := time.Now()
	since := func(at time.Time) string {
		if at.IsZero() {
			return "never"
		}
		return at.Sub(t0).Round(time.Millisecond).String()
	}
	pubs := []*Fleet{start("pop1", "publish"), start("pop2", "publish")}
	const n, rate, killAt = 3000, 500, 1000
	var (
		mu      sync.Mutex
		sentAt  = make([]time.Time, n)
		killed  *natstest.Server
		killedT time.Time
	)
	type follower struct {
		f     *Fleet
		mu    sync.Mutex
		got   map[int]time.Time
		last  uint64 // the last stream sequence handed on
		order atomic.Int64
	}
	var fols []*follower
	for i := range 3 {
		fo := &follower{f: start(fmt.Sprintf("mx%d", i+1), "follow"), got: map[int]time.Time{}}
		fols = append(fols, fo)
		go func() {
			for it := range fo.f.Items() {
				if it.Seq <= fo.last {
					fo.order.Add(1)
				}
				fo.last = it.Seq
				if it.Err != nil {
					continue
				}
				i, err := strconv.Atoi(strings.TrimPrefix(it.Event.User, "u"))
				if err != nil {
					continue
				}
				fo.mu.Lock()
				if _, dup := fo.got[i]; !dup {
					fo.got[i] = time.Now()
				}
				fo.mu.Unlock()
			}
		}()
	}
	for _, fo := range fols {
		<-fo.f.ready
	}
	leader := func(nc *nats.Conn) (string, []string) {
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		st, err := js.Stream(ctx, DefaultStream)
		if err != nil || st.CachedInfo().Cluster == nil {
			return "", nil
		}
		var cons []string
		for ci := range st.ListConsumers(ctx).Info() {
			if ci.Cluster != nil {
				cons = append(cons, ci.Cluster.Leader)
			}
		}
		return st.CachedInfo().Cluster.Leader, cons
	}
	var (
		newLeader     time.Time
		newLeaderName string
		firstAck      [2]time.Time
		watch         sync.WaitGroup
	)
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	for i := range n {
		<-tick.C
		mu.Lock()
		sentAt[i] = time.Now()
		mu.Unlock()
		pubs[i%2].Publish(fmt.Sprintf("ev-%d", i), login(i, time.Now()))
		if i != killAt {
			continue
		}
		name, cons := leader(admin)
		for _, s := range servers {
			if s.Name == name {
				killed = s
			}
		}
		if killed == nil {
			t.Fatal("no stream leader")
		}
		var where []string
		for _, f := range append(append([]*Fleet{}, pubs...), fols[0].f, fols[1].f, fols[2].f) {
			where = append(where, f.cfg.Name+"@"+f.nc.ConnectedServerName())
		}
		acks := [2]int64{pubs[0].stats.publishedOK.Load(), pubs[1].stats.publishedOK.Load()}
		killedT = time.Now()
		killed.Kill()
		if verbose {
			t.Logf("%s: killed stream leader %s (consumers on %v; clients %v)", since(killedT), name, cons, where)
		}
		watch.Add(2)
		go func() {
			defer watch.Done()
			var survivors []*natstest.Server
			for _, s := range servers {
				if s != killed {
					survivors = append(survivors, s)
				}
			}
			nc, err := nats.Connect(natstest.URLs(survivors))
			if err != nil {
				return
			}
			defer nc.Close()
			at, _ := testutil.Poll(30*time.Second, 10*time.Millisecond, func() bool {
				l, _ := leader(nc)
				newLeaderName = l
				return l != "" && l != killed.Name
			})
			newLeader = at
		}()
		go func() {
			defer watch.Done()
			testutil.Poll(30*time.Second, 2*time.Millisecond, func() bool {
				done := true
				for p, f := range pubs {
					if firstAck[p].IsZero() && f.stats.publishedOK.Load() > acks[p] {
						firstAck[p] = time.Now()
					}
					done = done && !firstAck[p].IsZero()
				}
				return done
			})
		}()
	}
	lastSent := time.Now()
	for _, fo := range fols {
		testutil.Eventually(t, 60*time.Second, fo.f.cfg.Name+" has every event", func() bool {
			fo.mu.Lock()
			defer fo.mu.Unlock()
			return len(fo.got) == n
		})
		if o := fo.order.Load(); o > 0 {
			t.Errorf("%s: %d messages handed on again or out of the stream's order", fo.f.cfg.Name, o)
		}
	}
	watch.Wait()
	if !verbose {
		return
	}
	t.Logf("t0 %s", t0.Format("15:04:05.000000"))
	t.Logf("%s: new stream leader %s seen", since(newLeader), newLeaderName)
	for _, s := range servers {
		for _, l := range strings.Split(s.Log(), "\n") {
			if strings.Contains(l, "leader") || strings.Contains(l, "Route") || strings.Contains(l, "Slow") {
				t.Logf("%s log: %s", s.Name, l)
			}
		}
	}
	for p := range pubs {
		t.Logf("%s: %s's first PubAck after the kill", since(firstAck[p]), pubs[p].cfg.Name)
	}
	t.Logf("%s: last event published", since(lastSent))
	for _, fo := range fols {
		fo.mu.Lock()
		first, all := time.Time{}, time.Time{}
		for i, at := range fo.got {
			if i > killAt && (first.IsZero() || at.Before(first)) {
				first = at
			}
			if at.After(all) {
				all = at
			}
		}
		fo.mu.Unlock()
		t.Logf("%s: %s first event published after the kill; %s all (%s after the last published, %s after the kill); reconnects %d",
			since(first), fo.f.cfg.Name, since(all), all.Sub(lastSent).Round(time.Millisecond), all.Sub(killedT).Round(time.Millisecond), fo.f.stats.reconnects.Load())
	}
}

// TestClusterRestarted: every server of the cluster stops (SIGTERM) while
// relaygates publish, and starts again; every follower must get every
// event published meanwhile. With RELAYGATE_TIMELINE=1 it logs when the
// servers elected their leaders, when each publisher had its first
// PubAck and each follower its first event after the restart.
func TestClusterRestarted(t *testing.T) {
	tc := startTimelineCluster(t)
	tc.admin.Close() // the servers stop below: the client must not outlive them
	servers, verbose, start := tc.servers, tc.verbose, tc.start
	pub := start("pop1", "publish")
	var fols []*Fleet
	for i := range 3 {
		fols = append(fols, start(fmt.Sprintf("mx%d", i+1), "follow"))
	}
	now := time.Now()
	pub.Publish("before", login(0, now))
	for _, f := range fols {
		if it := next(t, f); it.Seq != 1 {
			t.Fatalf("%s: #%d, want #1", f.cfg.Name, it.Seq)
		}
	}
	for _, s := range servers {
		s.Stop()
	}
	const n = 100
	for i := 1; i <= n; i++ {
		pub.Publish(fmt.Sprintf("during-%d", i), login(i, now))
	}
	testutil.Eventually(t, 10*time.Second, "the outage's events in the outbox", func() bool { return pub.outbox != nil && pub.stats.outbox.Load() == n })
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() { defer wg.Done(); s.Start() }()
	}
	wg.Wait()
	up := time.Now()
	acks := pub.stats.publishedOK.Load()
	var firstAck time.Time
	got := make([]time.Time, len(fols))
	var rw sync.WaitGroup
	for i, f := range fols {
		rw.Add(1)
		go func() {
			defer rw.Done()
			seen := map[int]bool{}
			last := uint64(1)
			timeout := time.After(60 * time.Second)
			for len(seen) < n {
				var it Item
				select {
				case it = <-f.Items():
				case <-timeout:
					t.Errorf("%s: %d of %d events within 60 s", f.cfg.Name, len(seen), n)
					return
				}
				if it.Seq <= last {
					t.Errorf("%s: #%d after #%d", f.cfg.Name, it.Seq, last)
				}
				last = it.Seq
				if got[i].IsZero() {
					got[i] = time.Now()
				}
				j, _ := strconv.Atoi(strings.TrimPrefix(it.Event.User, "u"))
				seen[j] = true
			}
			got[i] = time.Now()
		}()
	}
	testutil.Poll(60*time.Second, 2*time.Millisecond, func() bool {
		if pub.stats.publishedOK.Load() > acks {
			firstAck = time.Now()
			return true
		}
		return false
	})
	rw.Wait()
	if !verbose {
		return
	}
	for _, s := range servers {
		for _, l := range strings.Split(s.Log(), "\n") {
			if strings.Contains(l, "leader") {
				t.Logf("%s log: %s", s.Name, l)
			}
		}
	}
	t.Logf("servers back (accepting clients) at %s", up.Format("15:04:05.000"))
	t.Logf("+%s: pop1's first PubAck", firstAck.Sub(up).Round(time.Millisecond))
	for i, f := range fols {
		t.Logf("+%s: %s has every event; reconnects %d", got[i].Sub(up).Round(time.Millisecond), f.cfg.Name, f.stats.reconnects.Load())
	}
}

// timelineCluster is what TestStreamLeaderKilled and TestClusterRestarted
// start from: three servers with an R3 stream, an admin client, and
// start, which starts a relaygate fleet node on them (its log on stderr
// only with RELAYGATE_TIMELINE=1, verbose).
type timelineCluster struct {
	servers []*natstest.Server
	urls    string
	verbose bool
	admin   *nats.Conn
	start   func(name, mode string) *Fleet
}

func startTimelineCluster(t *testing.T) timelineCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	tc := timelineCluster{verbose: os.Getenv("RELAYGATE_TIMELINE") == "1"}
	if tc.verbose {
		zerolog.TimeFieldFormat = time.RFC3339Nano // the timeline's milliseconds
	}
	tc.servers = natstest.StartCluster(t, 3, natstest.Options{})
	tc.urls = natstest.URLs(tc.servers)
	var ajs jetstream.JetStream
	tc.admin, ajs = jetStreamClient(t, tc.urls)
	testutil.Eventually(t, 30*time.Second, "an R3 stream", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		f := &Fleet{cfg: Config{Stream: DefaultStream, Subject: DefaultSubject, Grace: 30 * time.Minute}}
		_, err := ajs.CreateStream(ctx, f.streamConfig(3))
		return err == nil
	})
	tc.start = func(name, mode string) *Fleet {
		c := Config{URLs: tc.urls, Stream: DefaultStream, Subject: DefaultSubject, Name: name, Mode: mode,
			CatchUp: 5 * time.Second, OutboxMax: 10000,
			StatePath: filepath.Join(t.TempDir(), "pop-before-smtp.state"), Grace: 30 * time.Minute}
		log := zerolog.Nop()
		if tc.verbose {
			log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"}).With().Timestamp().Str("node", name).Logger()
		}
		f, err := Start(c, log, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.Close)
		return f
	}
	return tc
}
