package cdbwriter

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestMaxEntriesEvictsLeastRecentlyLoggedIn(t *testing.T) {
	tab := NewTable(TableConfig{Grace: time.Hour, MaxEntries: 3})
	for i, a := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		tab.Login(grant(a), "", t0.Add(time.Duration(i)*time.Second))
	}
	// .1 logs in again, so .2 is now the least recently seen.
	tab.Login(grant("192.0.2.1"), "", t0.Add(10*time.Second))
	tab.Login(grant("192.0.2.4"), "", t0.Add(11*time.Second))
	if tab.Len() != 3 || tab.Evictions() != 1 {
		t.Fatalf("len %d evictions %d, want 3 and 1", tab.Len(), tab.Evictions())
	}
	var got []string
	for _, g := range tab.Grants() {
		got = append(got, Key(g.Addr))
	}
	if fmt.Sprint(got) != "[192.0.2.1 192.0.2.3 192.0.2.4]" {
		t.Fatalf("grants after eviction = %v, want .2 evicted", got)
	}
}

func TestMaxEntriesBoundsAFlood(t *testing.T) {
	const limit = 1000
	tab := NewTable(TableConfig{Grace: time.Hour, MaxEntries: limit})
	for i := range 50 * limit {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		tab.Login(Grant{Addr: a, Daemon: "dovecot"}, fmt.Sprint("s", i), t0)
	}
	order := 0
	for i := tab.head; i >= 0; i = tab.at(i).next {
		order++
	}
	if tab.Len() != limit || len(tab.sessions) > limit || len(tab.open) > limit || order != limit {
		t.Fatalf("len %d sessions %d open %d order %d, want at most %d", tab.Len(), len(tab.sessions), len(tab.open), order, limit)
	}
	if len(tab.expiry) > 2*limit+1024 {
		t.Fatalf("expiry heap holds %d items for %d grants", len(tab.expiry), limit)
	}
	if tab.Evictions() != 49*limit {
		t.Fatalf("evictions %d", tab.Evictions())
	}
}

func TestSetExcludeRemovesNewlyExcluded(t *testing.T) {
	tab := NewTable(TableConfig{Grace: time.Hour})
	tab.Login(grant("192.0.2.1"), "S", t0)
	tab.Login(grant("198.51.100.1"), "", t0)
	m1, _ := tab.Versions()
	gone := tab.SetExclude([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")})
	if len(gone) != 1 || Key(gone[0].Addr) != "192.0.2.1" {
		t.Fatalf("SetExclude removed %v", gone)
	}
	if m2, _ := tab.Versions(); m2 == m1 {
		t.Fatal("membership version not bumped: the map would not be rewritten")
	}
	if _, ok := tab.Logout("dovecot", "S", t0); ok {
		t.Fatal("session of a removed grant still open")
	}
	if out := tab.Login(grant("192.0.2.9"), "", t0); out != Excluded {
		t.Fatalf("login inside the new exclusion = %v", out)
	}
	if tab.Len() != 1 {
		t.Fatalf("other grants dropped: %v", tab.Grants())
	}
}

// TestStateFailureDoesNotDelayMap: a state file that cannot be written has
// its own retry schedule; new grants still reach Postfix after one -flush.
func TestStateFailureDoesNotDelayMap(t *testing.T) {
	dir := t.TempDir()
	svc := NewService(Config{
		MapPath:   filepath.Join(dir, "pbs.cdb"),
		StatePath: filepath.Join(dir, "missing-dir", "pbs.state"),
		Flush:     time.Second,
		Logger:    zerolog.New(zerolog.NewTestWriter(t)),
	}, NewTable(TableConfig{Grace: time.Hour}))
	if err := svc.Start(t0); err != nil {
		t.Fatalf("an unwritable state file stopped the start: %v", err)
	}
	for i := 1; i <= 8; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		a := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		svc.Login(Grant{Addr: a, Daemon: "dovecot"}, "", now)
		if next := svc.Tick(now); next.IsZero() {
			t.Fatal("no retry of the state file scheduled")
		}
		keys, err := ReadMap(filepath.Join(dir, "pbs.cdb"))
		if err != nil || len(keys) != i {
			t.Fatalf("after login %d the map has %d keys (%v): the state failure delayed the map", i, len(keys), err)
		}
	}
	if svc.stats.StateErrors.Load() == 0 {
		t.Fatal("state errors not counted")
	}
}
