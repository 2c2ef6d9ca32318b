package cdbwriter

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/grants"
)

// TestOnSetHandOff: OnSet gets the set at start, when it changed (at most
// once per -flush, never for a repeat login), at shutdown, and while the
// map cannot be written: a failing map holds back no other output.
func TestOnSetHandOff(t *testing.T) {
	dir := t.TempDir()
	var got [][]string
	cfg := testConfig(t, dir)
	cfg.OnSet = func(addrs []netip.Addr) {
		var ss []string
		for _, a := range addrs {
			ss = append(ss, a.String())
		}
		slices.Sort(ss)
		got = append(got, ss)
	}
	svc := startService(t, cfg, grants.TableConfig{Grace: time.Hour})
	if len(got) != 1 || len(got[0]) != 0 {
		t.Fatalf("at start: %v, want one empty set", got)
	}
	svc.login(grant("192.0.2.1"), "", t0.Add(100*time.Millisecond))
	svc.tick(t0.Add(200 * time.Millisecond)) // within -flush of the start
	if len(got) != 1 {
		t.Fatalf("handed within -flush: %v", got)
	}
	if due := svc.due(); !due.Equal(t0.Add(time.Second)) {
		t.Errorf("due %v, want start + flush", due)
	}
	svc.tick(t0.Add(time.Second))
	if len(got) != 2 || !slices.Equal(got[1], []string{"192.0.2.1"}) {
		t.Fatalf("after -flush: %v", got)
	}
	svc.login(grant("192.0.2.1"), "", t0.Add(3*time.Second)) // repeat: the set is the same
	svc.tick(t0.Add(5 * time.Second))
	if len(got) != 2 {
		t.Fatalf("handed for a repeat login: %v", got)
	}

	svc.writeMapFile = func(string, *grants.Table) error { return errors.New("no space left on device") }
	svc.login(grant("::ffff:192.0.2.2"), "", t0.Add(6*time.Second))
	svc.tick(t0.Add(7 * time.Second))
	if len(got) != 3 || !slices.Equal(got[2], []string{"192.0.2.1", "192.0.2.2"}) {
		t.Fatalf("with the map failing: %v", got)
	}
	svc.login(grant("192.0.2.3"), "", t0.Add(7500*time.Millisecond))
	if err := svc.shutdown(t0.Add(7600 * time.Millisecond)); err == nil {
		t.Error("shutdown with a failing map: no error")
	}
	if len(got) != 4 || len(got[3]) != 3 {
		t.Fatalf("at shutdown (within -flush, map failing): %v", got)
	}
}

// TestNoOnSetNoSnapshot: without OnSet nothing is due for it.
func TestNoOnSetNoSnapshot(t *testing.T) {
	svc := newTestService(t, t.TempDir(), time.Hour)
	svc.login(grant("192.0.2.1"), "", t0)
	if !svc.handOffDue().IsZero() || svc.handed.done {
		t.Error("hand-off state without OnSet")
	}
}

// BenchmarkHandOff100k is what OnSet costs the table's goroutine at
// 100,000 grants: copying the addresses out (the outputs write them on
// goroutines of their own).
func BenchmarkHandOff100k(b *testing.B) {
	tab := grants.NewTable(grants.TableConfig{Grace: time.Hour, MaxEntries: 200_000})
	for i := range 100_000 {
		tab.Login(grants.Grant{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), User: "u", Daemon: "d"}, "", t0)
	}
	cfg := Config{Flush: time.Second, OnSet: func([]netip.Addr) {}}
	svc := NewService(cfg, tab)
	for b.Loop() {
		svc.handed.done = false
		svc.handOff(t0, true)
	}
}
