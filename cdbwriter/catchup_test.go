package cdbwriter

import (
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/grants"
)

// TestCatchUpIsInTheFirstMap: what Config.CatchUp applies at start (a
// fleet's active grants) is in the very first map, and already in the
// state file when Postfix can first see it; an excluded address is not.
func TestCatchUpIsInTheFirstMap(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	calls := 0
	cfg.CatchUp = func(apply func(grants.Event)) {
		calls++
		for _, a := range []string{"192.0.2.10", "192.0.2.11", "203.0.113.5"} {
			apply(grants.Event{Kind: grants.EventLogin, Grant: grant(a), At: t0.Add(-time.Minute)})
		}
	}
	startService(t, cfg, grants.TableConfig{Grace: time.Hour, Exclude: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}})
	if calls != 1 {
		t.Fatalf("CatchUp called %d times", calls)
	}
	if keys := mapKeys(t, dir); !slices.Equal(keys, []string{"192.0.2.10", "192.0.2.11"}) {
		t.Fatalf("first map %v", keys)
	}
	gs, err := LoadState(filepath.Join(dir, "pbs.state"))
	if err != nil || len(gs) != 2 {
		t.Fatalf("state after start: %v %v", gs, err)
	}
	for _, g := range gs {
		if want := t0.Add(-time.Minute).Add(time.Hour); !g.Expires.Equal(want) {
			t.Errorf("%s expires %s, want %s (grace from the event's own time)", g.Addr, g.Expires, want)
		}
	}
}
