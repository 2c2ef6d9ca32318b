package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/internal/fleet"
	"github.com/relaygate/relaygate/internal/fleet/natstest"
	"github.com/relaygate/relaygate/internal/metric"
	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/internal/testutil/sendtest"
)

// fleetConfig is testConfig in a fleet: name and mode on the server at
// url; follow-only relaygates have no listener.
func fleetConfig(t *testing.T, url, name, mode string) Config {
	t.Helper()
	cfg := testConfig(t)
	if mode == "follow" {
		cfg.UDP, cfg.TCP = "", ""
	}
	cfg.Fleet = fleet.Config{
		URLs: url, Stream: fleet.DefaultStream, Subject: fleet.DefaultSubject, Name: name, Mode: mode,
		CatchUp: 5 * time.Second, OutboxMax: fleet.DefaultOutboxMax,
		StatePath: cfg.StatePath, Grace: cfg.Grace,
	}
	if err := cfg.Fleet.Check(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// publishLogins publishes n logins on the fleet at url, as pop9 would, and
// waits until the stream has them.
func publishLogins(t *testing.T, url string, n int, at time.Time) []netip.Addr {
	t.Helper()
	c := fleet.Config{URLs: url, Stream: fleet.DefaultStream, Subject: fleet.DefaultSubject, Name: "pop9", Mode: "publish",
		OutboxMax: 100000, StatePath: t.TempDir() + "/x.state", Grace: 30 * time.Minute}
	f, err := fleet.Start(c, zerolog.Nop(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var addrs []netip.Addr
	for i := range n {
		a := netip.AddrFrom4([4]byte{198, 51, 100 + byte(i/250), byte(1 + i%250)})
		addrs = append(addrs, a)
		f.Publish(fmt.Sprintf("login-%d", i), fleet.Event{Kind: fleet.KindLogin, Addr: a, User: fmt.Sprintf("u%d", i), Daemon: "dovecot", Host: "pop9", At: at})
	}
	testutil.Eventually(t, 20*time.Second, "the logins stored", func() bool {
		v := fleetValues(f.Stats())
		return v["fleet_buffered_events"] == 0 && v["fleet_published_ok"]+v["fleet_published_duplicate"] == float64(n)
	})
	return addrs
}

// fleetValues are a fleet's counters by their log key.
func fleetValues(s *fleet.Stats) map[string]float64 {
	out := map[string]float64{}
	for k, v := range metric.LogFields(metric.Collect(s)) {
		out[k], _ = v.(float64)
	}
	return out
}

// TestFleetCatchUpBeforeFirstPublish: a new follower has every active grant
// of the fleet in the very first map it publishes (New returns with it on
// disk), and a login older than grace is not among them.
func TestFleetCatchUpBeforeFirstPublish(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	addrs := publishLogins(t, srv.URL(), 300, time.Now())
	publishLogins(t, srv.URL(), 1, time.Now().Add(-time.Hour)) // 198.51.100.1 again, an hour ago: no effect
	cfg := fleetConfig(t, srv.URL(), "mx1", "follow")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	d, err := New(ctx, cfg, zerolog.New(zerolog.NewTestWriter(t)), cdbwriter.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	keys, err := cdbwriter.ReadMap(cfg.MapPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(addrs) {
		t.Fatalf("the first map has %d addresses, want the fleet's %d", len(keys), len(addrs))
	}
	t.Logf("New returned in %s with %d fleet grants in the first map", took, len(keys))
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The state file has them too; the cursor says how far.
	if b, err := os.ReadFile(cfg.StatePath + fleet.CursorSuffix); err != nil || !strings.HasPrefix(string(b), "relaygate-fleet-cursor 1 RELAYGATE ") {
		t.Fatalf("cursor after stop: %q %v", b, err)
	}
}

// TestFleetTwoRelaygates: a login received over syslog by one relaygate is
// granted by a follower through the fleet, which applies its own
// exclusions; the publisher skips its own events.
func TestFleetTwoRelaygates(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	popCfg := fleetConfig(t, srv.URL(), "pop1", "both")
	pop, _ := launch(t, popCfg)
	mxCfg := fleetConfig(t, srv.URL(), "mx1", "follow")
	mxCfg.Exclude = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	mx, _ := launch(t, mxCfg)

	granted, excluded := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("203.0.113.9")
	sendtest.UDP(t, pop.UDPAddr().String(), fmt.Sprintf(dovecotLogin, granted), strings.Replace(fmt.Sprintf(dovecotLogin, excluded), "session=<abc>", "session=<abe>", 1))
	testutil.Eventually(t, 5*time.Second, "both granted on pop1", func() bool { return pop.Granted(granted) && pop.Granted(excluded) })
	testutil.Eventually(t, 5*time.Second, "192.0.2.10 granted on mx1 through the fleet", func() bool { return mx.Granted(granted) })
	testutil.Eventually(t, 5*time.Second, "mx1 saw both", func() bool { return fleetValues(mx.fleet.Stats())["fleet_received_applied"] == 2 })
	if mx.Granted(excluded) {
		t.Fatal("mx1 granted an address its -exclude covers")
	}
	g, _ := mx.lookup(granted)
	if g.User != "bob" || g.Daemon != "dovecot" || g.Host != "mx1" || g.Open() {
		t.Fatalf("mx1's grant %+v: want bob's dovecot login from host mx1, without a session", g)
	}
	testutil.Eventually(t, 5*time.Second, "pop1 read its own events back and skipped them", func() bool {
		return fleetValues(pop.fleet.Stats())["fleet_received_own"] == 2
	})
	if n := fleetValues(pop.fleet.Stats())["fleet_received_applied"]; n != 0 {
		t.Fatalf("pop1 applied %v events of its own", n)
	}
}

// TestFleetSessionsRefreshAndEnd: the holder of an open session refreshes
// it in the fleet while it is open, and says when it ended; a follower's
// grant then runs for grace from the logout.
func TestFleetSessionsRefreshAndEnd(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	pop, _ := launch(t, fleetConfig(t, srv.URL(), "pop1", "both"))
	mxCfg := fleetConfig(t, srv.URL(), "mx1", "follow")
	mx, _ := launch(t, mxCfg)
	a := netip.MustParseAddr("192.0.2.20")
	sendtest.UDP(t, pop.UDPAddr().String(), fmt.Sprintf(dovecotLogin, a))
	testutil.Eventually(t, 5*time.Second, "granted on mx1", func() bool { return mx.Granted(a) })

	open := map[netip.Addr]struct{}{}
	stop := make(chan struct{})
	every := fleet.RefreshEvery(popCfg(pop).Grace)
	if !pop.refreshSessions(open, every, stop) {
		t.Fatal("refresh round failed")
	}
	if _, ok := open[a]; !ok || fleetValues(pop.fleet.Stats())["fleet_session_events_refresh"] != 1 {
		t.Fatalf("open %v, refreshes %v", open, fleetValues(pop.fleet.Stats())["fleet_session_events_refresh"])
	}
	// The logout (Dovecot's mail process, same session id).
	logout := time.Now()
	sendtest.UDP(t, pop.UDPAddr().String(), "<22>Nov 21 10:00:01 mx1 dovecot[900]: imap(bob)<901><abc>: Disconnected: Logged out in=10 out=20")
	testutil.Eventually(t, 5*time.Second, "the session closed on pop1", func() bool { g, ok := pop.lookup(a); return ok && !g.Open() })
	if !pop.refreshSessions(open, every, stop) {
		t.Fatal("refresh round failed")
	}
	if fleetValues(pop.fleet.Stats())["fleet_session_events_end"] != 1 {
		t.Fatal("no end event")
	}
	popGrant, _ := pop.lookup(a)
	testutil.Eventually(t, 5*time.Second, "mx1 has the end", func() bool {
		g, ok := mx.lookup(a)
		return ok && !g.Expires.Before(popGrant.Expires.Add(-time.Millisecond))
	})
	if g, _ := mx.lookup(a); g.Expires.Sub(logout.Add(mxCfg.Grace)) > 5*time.Second {
		t.Fatalf("mx1's grant ends %s, pop1's %s: want grace after the logout", g.Expires, popGrant.Expires)
	}
}

func popCfg(d *Daemon) Config { return d.cfg }

// TestFleetEngineDown: with every NATS server down, a relaygate starts
// (after -nats-catchup), logins grant here at once and wait in the
// outbox; when the server comes up they go out and a follower grants them.
func TestFleetEngineDown(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	srv.Stop()
	popCfg := fleetConfig(t, srv.URL(), "pop1", "both")
	popCfg.Fleet.CatchUp = 300 * time.Millisecond
	start := time.Now()
	pop, _ := launch(t, popCfg)
	// -nats-catchup is 300 ms: a start held for long waited on the
	// unreachable fleet; a loaded machine may still take seconds.
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("start with the fleet down took %s", took)
	} else if took > 3*time.Second {
		t.Logf("slow: start with the fleet down took %s", took)
	}
	a := netip.MustParseAddr("192.0.2.30")
	sent := time.Now()
	sendtest.UDP(t, pop.UDPAddr().String(), fmt.Sprintf(dovecotLogin, a))
	testutil.Eventually(t, 2*time.Second, "in the map with the fleet down", func() bool { return sendtest.InMap(t, popCfg.MapPath, a.String()) })
	t.Logf("login to map with the fleet down: %s", time.Since(sent))
	testutil.Eventually(t, 2*time.Second, "buffered", func() bool { return fleetValues(pop.fleet.Stats())["fleet_buffered_events"] == 1 })

	srv.Start()
	mx, _ := launch(t, fleetConfig(t, srv.URL(), "mx1", "follow"))
	testutil.Eventually(t, 15*time.Second, "granted on mx1 after the fleet came back", func() bool { return mx.Granted(a) })
	testutil.Eventually(t, 5*time.Second, "outbox empty", func() bool { return fleetValues(pop.fleet.Stats())["fleet_buffered_events"] == 0 })
}
