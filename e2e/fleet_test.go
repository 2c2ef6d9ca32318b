//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/internal/fleet"
	"github.com/relaygate/relaygate/internal/fleet/natstest"
	"github.com/relaygate/relaygate/internal/testutil"
)

// The fleet (docs/FLEET.md) with real processes on the suite's loopback:
// a 3-node nats-server cluster (Debian's 2.9.10) holding the stream R3, two
// "POP host" relaygates receiving Dovecot login lines over UDP and
// publishing them, and three "MTA" relaygates that only follow (no
// listener). Every check reads the MTAs' cdb maps, the file Postfix reads.

type fleetNode struct {
	name    string
	args    []string
	mapPath string
	udp     string   // POP hosts only
	prefix  []string // runs the relaygate in a host's namespaces (fleet_topology_test.go); nil: here
	p       *proc
	log     string
	t       *testing.T
}

func (n *fleetNode) start() {
	n.t.Helper()
	argv := append(slices.Clone(n.prefix), relaygateBin)
	argv = append(argv, n.args...)
	n.p = startProc(n.t, n.name, n.log, exec.Command(argv[0], argv[1:]...))
	waitLog(n.t, n.log, "relaygate listening", 20*time.Second)
}

// has reports which of addrs are in the node's map.
func (n *fleetNode) has(addrs []netip.Addr) (in int, missing []netip.Addr) {
	keys, err := cdbwriter.ReadMap(n.mapPath)
	if err != nil {
		return 0, addrs
	}
	set := make(map[string]bool, len(keys))
	for _, k := range keys {
		set[k] = true
	}
	for _, a := range addrs {
		if set[a.String()] {
			in++
		} else {
			missing = append(missing, a)
		}
	}
	return in, missing
}

type fleetSuite struct {
	t       *testing.T
	dir     string
	servers []*natstest.Server
	urls    string
	pops    []*fleetNode
	mtas    []*fleetNode
	sent    []netip.Addr // every login sent, in order
	next    int
}

func newFleetSuite(t *testing.T) *fleetSuite {
	dir := testDir(t)
	s := &fleetSuite{t: t, dir: dir}
	s.servers = natstest.StartCluster(t, 3, natstest.Options{})
	s.urls = natstest.URLs(s.servers)
	s.waitStreamReady()
	ports := natstest.FreePorts(t, 2)
	for i := range 2 {
		s.pops = append(s.pops, s.node(fmt.Sprintf("pop%d", i+1), fmt.Sprintf("127.0.0.1:%d", ports[i])))
	}
	for i := range 3 {
		s.mtas = append(s.mtas, s.node(fmt.Sprintf("mx%d", i+1), ""))
	}
	for _, n := range append(slices.Clone(s.pops), s.mtas...) {
		n.start()
	}
	return s
}

func (s *fleetSuite) node(name, udp string) *fleetNode {
	mode := "both"
	if udp == "" {
		mode = "follow"
	}
	n := newFleetNode(s.t, s.dir, s.urls, name, mode, "-udp", udp, "-tcp", "")
	n.udp = udp
	return n
}

// newFleetNode is a relaygate of the fleet at urls in mode (both, follow,
// publish), with the listener flags given, its map at DIR/NAME/ and its
// log at DIR/NAME.log; it is not started.
func newFleetNode(t *testing.T, dir, urls, name, mode string, listen ...string) *fleetNode {
	n := &fleetNode{name: name, t: t,
		mapPath: filepath.Join(dir, name, "pop-before-smtp.cdb"), log: filepath.Join(dir, name+".log")}
	mkdirs(t, 0o755, filepath.Dir(n.mapPath))
	n.args = append([]string{"serve"}, listen...)
	n.args = append(n.args, "-map", n.mapPath, "-mynetworks", "none", "-flush", "50ms", "-log-format", "json",
		"-nats-url", urls, "-nats-name", name, "-nats-mode", mode, "-nats-catchup", "10s")
	return n
}

// waitStreamReady waits until the cluster has a JetStream meta leader and
// makes the stream R3 (the first publishing relaygate would, too).
func (s *fleetSuite) waitStreamReady() { waitStreamR3(s.t, s.urls) }

// waitStreamR3 waits until the cluster at urls has a JetStream meta leader
// and makes the stream R3 there, as the first publishing relaygate would
// on a cluster. opts are the connection's (TLS and a user allowed to
// create the stream, where the servers want them).
func waitStreamR3(t *testing.T, urls string, opts ...nats.Option) {
	t.Helper()
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: fleet.DefaultStream, Subjects: []string{fleet.DefaultSubject + ".>"},
			MaxAge: time.Hour, Duplicates: 2 * time.Minute, Storage: jetstream.FileStorage, Replicas: 3,
			Discard: jetstream.DiscardOld, MaxMsgSize: fleet.MaxEventBytes + 1024}) // as relaygate makes it
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no R3 stream within 30 s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// leader is the stream's leader server.
func (s *fleetSuite) leader() *natstest.Server {
	s.t.Helper()
	var running []*natstest.Server
	for _, srv := range s.servers {
		if srv.Running() {
			running = append(running, srv)
		}
	}
	name := streamLeader(s.t, natstest.URLs(running))
	for _, srv := range s.servers {
		if srv.Name == name {
			return srv
		}
	}
	s.t.Fatalf("stream leader %q is none of the servers", name)
	return nil
}

// streamLeader is the server name of the fleet stream's leader, asked of
// the servers at urls with opts. It asks again while the stream has no
// leader (an election under way) or cannot be reached, up to the hang
// guard.
func streamLeader(t *testing.T, urls string, opts ...nats.Option) string {
	t.Helper()
	var leader string
	var lastErr error
	ask := func() bool {
		nc, err := nats.Connect(urls, opts...)
		if err != nil {
			lastErr = err
			return false
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			lastErr = err
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, fleet.DefaultStream)
		if err != nil {
			lastErr = err
			return false
		}
		if cl := st.CachedInfo().Cluster; cl != nil && cl.Leader != "" {
			leader = cl.Leader
			return true
		}
		lastErr = errors.New("the stream has no leader")
		return false
	}
	if _, ok := testutil.Poll(hangGuard(0), 200*time.Millisecond, ask); !ok {
		t.Fatalf("no stream leader: %v", lastErr)
	}
	return leader
}

// login sends the next Dovecot login line to pop (by turns if nil) and
// returns its address; the lines carry a session id, as Dovecot's do.
func (s *fleetSuite) login(pop *fleetNode) (netip.Addr, time.Time) {
	i := s.next
	s.next++
	if pop == nil {
		pop = s.pops[i%len(s.pops)]
	}
	a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	line := fmt.Sprintf("<22>Nov 21 10:00:00 %s dovecot[812]: imap-login: Login: user=<u%d>, method=PLAIN, rip=%s, lip=192.0.2.1, mpid=%d, session=<s%d>",
		pop.name, i, a, 1000+i, i)
	c, err := net.Dial("udp", pop.udp)
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(line)); err != nil {
		s.t.Fatal(err)
	}
	s.sent = append(s.sent, a)
	return a, time.Now()
}

// stream sends n logins at rate per second; during is called once, after
// a third of them.
func (s *fleetSuite) stream(n, rate int, during func()) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := range n {
		<-tick.C
		s.login(nil)
		if i == n/3 && during != nil {
			during()
		}
	}
}

// waitAll waits until every MTA (and node in also) has every login sent,
// and returns how long that took.
func (s *fleetSuite) waitAll(within time.Duration, nodes ...*fleetNode) time.Duration {
	s.t.Helper()
	within = hangGuard(within)
	start := time.Now()
	if len(nodes) == 0 {
		nodes = s.mtas
	}
	for {
		done := true
		var report []string
		for _, n := range nodes {
			in, missing := n.has(s.sent)
			if len(missing) > 0 {
				done = false
				report = append(report, fmt.Sprintf("%s has %d of %d (first missing %s)", n.name, in, len(s.sent), missing[0]))
			}
		}
		if done {
			return time.Since(start)
		}
		if time.Since(start) > within {
			s.t.Fatalf("not every login on every MTA within %s: %s", within, strings.Join(report, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// TestFleet runs the fleet's scenarios in order on one cluster:
// latency, the stream leader killed during a login stream, an MTA's
// relaygate killed -9 and restarted, a new MTA joining, the whole cluster
// down.
func TestFleet(t *testing.T) {
	natstest.Program(t)
	s := newFleetSuite(t)

	t.Run("latency", func(t *testing.T) {
		const n = 200
		var lat []time.Duration
		for range n {
			a, sent := s.login(nil)
			for {
				ok := true
				for _, m := range s.mtas {
					if in, _ := m.has([]netip.Addr{a}); in != 1 {
						ok = false
						break
					}
				}
				if ok {
					lat = append(lat, time.Since(sent))
					break
				}
				if time.Since(sent) > hangGuard(0) {
					t.Fatalf("login %s not on every MTA within %v", a, hangGuard(0))
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		worst := 0
		for i := range lat {
			if lat[i] > lat[worst] {
				worst = i
			}
		}
		t.Logf("FIGURE login → in all 3 MTAs' maps (one at a time, %d logins, -flush 50ms): p50 %s, p99 %s, max %s (login #%d)",
			n, percentile(lat, 0.5).Round(100*time.Microsecond), percentile(lat, 0.99).Round(100*time.Microsecond), lat[worst].Round(100*time.Microsecond), worst)
	})

	t.Run("stream-leader-killed", func(t *testing.T) {
		before := len(s.sent)
		var killed *natstest.Server
		var killedAt time.Time
		s.stream(3000, 500, func() {
			killed = s.leader()
			killedAt = time.Now()
			killed.Kill()
		})
		took := s.waitAll(60 * time.Second)
		t.Logf("FIGURE stream leader %s killed (SIGKILL) during 3000 logins at 500/s: 0 of %d lost on each of 3 MTAs; all there %s after the last login (%s after the kill)",
			killed.Name, len(s.sent)-before, took.Round(time.Millisecond), time.Since(killedAt).Round(time.Millisecond))
		killed.Start()
	})

	t.Run("mta-kill9-restart", func(t *testing.T) {
		mx := s.mtas[0]
		if err := mx.p.stop(t, syscall.SIGKILL, 5*time.Second); err == nil {
			t.Fatal("relaygate killed with SIGKILL exited 0")
		}
		down := time.Now()
		s.stream(1500, 50, nil) // 30 s of logins while it is down
		mx.log += ".2"
		start := time.Now()
		mx.start()
		took := s.waitAll(60*time.Second, mx) // past -nats-catchup's 10 s, on a loaded machine
		t.Logf("FIGURE %s killed -9 for %s during logins, restarted: every one of %d grants in its map %s after its start (%s after 'relaygate listening')",
			mx.name, start.Sub(down).Round(time.Second), len(s.sent), time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond))
		if since := time.Since(start); since > time.Second+took {
			t.Logf("note: start itself took %s", since-took)
		}
	})

	t.Run("new-mta-joins", func(t *testing.T) {
		mx := s.node("mx4", "")
		start := time.Now()
		mx.start()
		listening := time.Since(start)
		took := s.waitAll(60*time.Second, mx) // past -nats-catchup's 10 s, on a loaded machine
		in, _ := mx.has(s.sent)
		t.Logf("FIGURE a new MTA joins: %d of %d active grants in its map when it says 'relaygate listening' (%s after exec), all of them %s later",
			in, len(s.sent), listening.Round(time.Millisecond), took.Round(time.Millisecond))
		s.mtas = append(s.mtas, mx)
	})

	t.Run("cluster-down-30s", func(t *testing.T) {
		granted := slices.Clone(s.sent)
		for _, srv := range s.servers {
			srv.Stop()
		}
		downAt := time.Now()
		var during []netip.Addr
		for range 100 {
			a, _ := s.login(nil)
			during = append(during, a)
			time.Sleep(20 * time.Millisecond)
		}
		// Every MTA keeps relaying its granted users meanwhile; the logins
		// of the outage are granted on their POP hosts at once.
		for _, m := range s.mtas {
			if _, missing := m.has(granted); len(missing) > 0 {
				t.Fatalf("%s lost %d grants while the cluster was down", m.name, len(missing))
			}
		}
		for _, p := range s.pops {
			var mine []netip.Addr
			for i, a := range during {
				if s.pops[(len(granted)+i)%len(s.pops)] == p {
					mine = append(mine, a)
				}
			}
			var missing []netip.Addr
			start := time.Now()
			at, ok := testutil.Poll(testutil.EventuallyFloor, 20*time.Millisecond, func() bool { _, missing = p.has(mine); return len(missing) == 0 })
			if !ok {
				t.Fatalf("%s did not grant %d logins made while the cluster was down", p.name, len(missing))
			}
			atOnce(t, p.name+" granting the logins made while the cluster was down, after the last", at.Sub(start), 2*time.Second)
		}
		time.Sleep(30*time.Second - time.Since(downAt))
		var wg sync.WaitGroup
		for _, srv := range s.servers {
			wg.Add(1)
			go func() { defer wg.Done(); srv.Start() }()
		}
		wg.Wait()
		up := time.Now()
		took := s.waitAll(90 * time.Second)
		t.Logf("FIGURE whole cluster down %s (SIGTERM): every MTA kept its %d grants; the %d logins made during the outage reached every MTA %s after the servers were back",
			up.Sub(downAt).Round(time.Second), len(granted), len(during), took.Round(time.Millisecond))
	})

	for _, n := range append(slices.Clone(s.pops), s.mtas...) {
		if err := n.p.stop(t, syscall.SIGTERM, 10*time.Second); err != nil {
			t.Errorf("%s: %v\n%s", n.name, err, tail(n.log, 20))
		}
	}
}
