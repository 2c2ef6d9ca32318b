//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

// measure makes n real logins, one at a time, from fresh client addresses
// on the POP hosts (by turns), POP3 and IMAP by turns, each checked
// denied on every MTA first. For each it returns the time from the
// login's reply to the last MTA's 250, to the first's, and to the POP
// host's own map.
func (tp *topology) measure(t *testing.T, n int, pops []*topoPOP) (last, first, local []time.Duration) {
	t.Helper()
	for i := range n {
		p := pops[i%len(pops)]
		src := tp.client()
		tp.deniedEverywhere(t, src)
		imap := (i/len(pops))%2 == 1
		l, err := loginAt(imap, p.addr, src, "alice", "alicepw")
		if err != nil || !l.OK {
			t.Fatalf("login on %s from %s (imap %v): %q, %v", p.name, src, imap, l.Reply, err)
		}
		// Generous: a CI run beside this one can starve the fleet for
		// seconds; the figure says how long it took.
		r, err := tp.relayedEverywhere(src, p, 30*time.Second, false)
		if err != nil {
			t.Fatal(err)
		}
		last = append(last, slices.MaxFunc(r.at, time.Time.Compare).Sub(l.Answer))
		first = append(first, slices.MinFunc(r.at, time.Time.Compare).Sub(l.Answer))
		local = append(local, r.local.Sub(l.Answer))
		if d := last[len(last)-1]; d > 500*time.Millisecond {
			// The p99 is one of these: say where the time went.
			each := []string{fmt.Sprintf("%s's own map %s", p.name, fmtMS(r.local.Sub(l.Answer)))}
			for j, m := range tp.mtas {
				each = append(each, fmt.Sprintf("%s 250 %s (map %s)", m.name, fmtMS(r.at[j].Sub(l.Answer)), fmtMS(r.inMap[j].Sub(l.Answer))))
			}
			t.Logf("note: login #%d on %s from %s (imap %v) reached all MTAs in %s: %s", i, p.name, src, imap, fmtMS(d), strings.Join(each, ", "))
		}
	}
	return last, first, local
}

func fmtMS(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }

// TestFleetTopology: the fleet runs on the example's nats-server
// configuration (TLS, users from client certificates, a followers'
// account that cannot publish); a real login on either POP host is
// relayed by the Postfix of all three MTAs, an address that did not log
// in (or failed to) is refused by all three; login → last MTA's 250,
// measured, and the same while pop1's relaygate receives 100,000 syslog
// messages a second. Then the failover scenarios of TestFleet, with real
// logins: the stream leader killed during a stream of them, an MTA's
// relaygate killed -9 for 30 s, a new MTA host joining, the whole
// cluster down for 30 s.
func TestFleetTopology(t *testing.T) {
	tp := newTopology(t)

	t.Run("tls-authorization", tp.checkAuthorization)

	t.Run("login-to-all-mtas", func(t *testing.T) {
		// A failed login, and an address that never logged in: refused
		// everywhere. The failure is logged before the series, whose
		// logins on pop1 then prove (RELP keeps order) it was read.
		failed, never := topoClient(topoRelaySrc+1), topoClient(topoRelaySrc+2)
		if l, err := loginAt(false, tp.pops[0].addr, failed, "alice", "wrong"); err != nil || l.OK {
			t.Fatalf("a wrong password: %q, %v", l.Reply, err)
		}
		waitLog(t, tp.pops[0].allLog, "rip="+failed, 10*time.Second)

		const n = 100
		start := time.Now()
		last, first, local := tp.measure(t, n, tp.pops)
		tp.deniedEverywhere(t, failed)
		tp.deniedEverywhere(t, never)
		t.Logf("FIGURE real Dovecot login (POP3/IMAP by turns, pop1/pop2 by turns) → rsyslog RELP → relaygate → NATS R3 → 3 MTAs' relaygates (-flush 50ms) → 250 from all 3 Postfix smtpd, %d logins in %s, from the login's reply: p50 %s, p99 %s, max %s (first MTA: p50 %s, p99 %s; the POP host's own map: p50 %s); a failed login and an address that never logged in: 554 %s on all 3",
			n, time.Since(start).Round(time.Second), fmtMS(percentile(last, 0.5)), fmtMS(percentile(last, 0.99)), fmtMS(slices.Max(last)),
			fmtMS(percentile(first, 0.5)), fmtMS(percentile(first, 0.99)), fmtMS(percentile(local, 0.5)), deniedText)
	})

	// The generator's usual mix (4% logins: 4,000 new grants a second
	// for the fleet to carry), then the same volume with few logins (the
	// syslog volume alone).
	for _, logins := range []string{"4", "0.05"} {
		t.Run("latency-under-100k-msgs-"+logins+"pct-logins", func(t *testing.T) { tp.underLoad(t, logins) })
	}

	// The failover scenarios, in order on the same fleet: each assumes
	// the previous one left it whole (a failed one stops the rest).
	var earlier []netip.Addr // the real logins of the scenarios so far
	for _, sc := range []struct {
		name string
		f    func(*testing.T) []netip.Addr
	}{
		{"stream-leader-killed", tp.leaderKilled},
		{"mta-kill9-restart", func(t *testing.T) []netip.Addr { return tp.mtaKilled(t, earlier) }},
		{"new-mta-joins", func(t *testing.T) []netip.Addr { return tp.mtaJoins(t, earlier) }},
		{"cluster-down-30s", func(t *testing.T) []netip.Addr { return tp.clusterDown(t, earlier) }},
	} {
		if !t.Run(sc.name, func(t *testing.T) { earlier = append(earlier, sc.f(t)...) }) {
			break
		}
	}

	for _, n := range append(tp.popNodes(), tp.mtaNodes()...) {
		if err := n.p.stop(t, syscall.SIGTERM, 10*time.Second); err != nil {
			t.Errorf("%s: %v\n%s", n.name, err, tail(n.log, 20))
		}
	}
}

func (tp *topology) popNodes() (out []*fleetNode) {
	for _, p := range tp.pops {
		out = append(out, p.rg)
	}
	return out
}

func (tp *topology) mtaNodes() (out []*fleetNode) {
	for _, m := range tp.mtas {
		out = append(out, m.rg)
	}
	return out
}

// underLoad: cmd/relaygate-load, run on pop1, sends pop1's relaygate
// 100,000 syslog messages a second over UDP on loopback (loginPct percent
// of them logins, each published to the fleet), while real logins on pop1,
// started every 500 ms, are timed to the last MTA's 250. Then every login
// of the stream that pop1 granted must be in every MTA's map.
func (tp *topology) underLoad(t *testing.T, loginPct string) {
	const rate, seconds, every = 100000, 15, 500 * time.Millisecond
	pop := tp.pops[0]
	bin := filepath.Join(tp.dir, "relaygate-load")
	if _, err := os.Stat(bin); err != nil {
		build := exec.Command("go", "build", "-o", bin, "./cmd/relaygate-load")
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/relaygate-load: %v\n%s", err, out)
		}
	}
	addrsFile := filepath.Join(tp.dir, "load-addrs-"+loginPct)
	out := filepath.Join(tp.dir, "load-"+loginPct+".out")
	// Each run its own seed: the addresses of the first are still granted.
	load := startProc(t, "relaygate-load", out, pop.command(bin, "-target", "udp://"+topoLoadUDP, "-seed", fmt.Sprint(time.Now().UnixNano()),
		"-count", fmt.Sprint(rate*seconds), "-rate", fmt.Sprint(rate), "-logins", loginPct, "-addrs-out", addrsFile))
	time.Sleep(time.Second) // into the stream

	var (
		mu                 sync.Mutex
		last, first, local []time.Duration
		errs               []error
		wg                 sync.WaitGroup
	)
	tick := time.NewTicker(every)
	for i := 0; !load.exited(); i++ {
		src := tp.client()
		tp.deniedEverywhere(t, src)
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := loginAt(i%2 == 1, pop.addr, src, "alice", "alicepw")
			if err == nil && !l.OK {
				err = fmt.Errorf("login from %s: %q", src, l.Reply)
			}
			var r relayed
			if err == nil {
				r, err = tp.relayedEverywhere(src, pop, 60*time.Second, true)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			last = append(last, slices.MaxFunc(r.at, time.Time.Compare).Sub(l.Answer))
			first = append(first, slices.MinFunc(r.at, time.Time.Compare).Sub(l.Answer))
			local = append(local, r.local.Sub(l.Answer))
		}()
		<-tick.C
	}
	tick.Stop()
	ended := time.Now()
	if err := load.stop(t, syscall.SIGTERM, time.Minute); err != nil {
		t.Fatalf("relaygate-load: %v\n%s", err, tail(out, 10))
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	var stream []netip.Addr
	b, err := os.ReadFile(addrsFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Fields(string(b)) {
		stream = append(stream, netip.MustParseAddr(l))
	}
	// What pop1 granted of the stream: UDP may drop some at this rate.
	_, missing := pop.rg.has(stream)
	lost := make(map[netip.Addr]bool, len(missing))
	for _, a := range missing {
		lost[a] = true
	}
	var granted []netip.Addr
	for _, a := range stream {
		if !lost[a] {
			granted = append(granted, a)
		}
	}
	var took time.Duration
	if _, ok := testutil.Poll(180*time.Second, 100*time.Millisecond, func() bool { // a hang guard; the time is the figure
		for _, m := range tp.mtas {
			if _, missing := m.rg.has(granted); len(missing) > 0 {
				return false
			}
		}
		took = time.Since(ended)
		return true
	}); !ok {
		var report []string
		for _, m := range tp.mtas {
			in, _ := m.rg.has(granted)
			report = append(report, fmt.Sprintf("%s %d", m.name, in))
		}
		t.Fatalf("of the %d stream logins pop1 granted, not all on every MTA 180 s after the stream: %s", len(granted), strings.Join(report, ", "))
	}
	t.Logf("relaygate-load on pop1: %s", strings.ReplaceAll(tail(out, 2), "\n", "; "))
	t.Logf("FIGURE while pop1's relaygate receives %d syslog msg/s (UDP, %d s, %s%% logins, each published): %d real logins on pop1, one every %s → 250 from all 3 MTAs' Postfix: p50 %s, p99 %s, max %s (first MTA: p50 %s; pop1's own map: p50 %s, p99 %s); the %d of %d stream logins pop1 granted were on every MTA %s after the stream ended",
		rate, seconds, loginPct, len(last), every, fmtMS(percentile(last, 0.5)), fmtMS(percentile(last, 0.99)), fmtMS(slices.Max(last)), fmtMS(percentile(first, 0.5)),
		fmtMS(percentile(local, 0.5)), fmtMS(percentile(local, 0.99)), len(granted), len(stream), took.Round(time.Millisecond))
}
