package cdbwriter

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/grants"
)

// TestRewriteKeepsUnpublishedRemovals: a grant that expired while the map
// could not be written is still in the map on disk. A whole-file state
// rewrite (here the one at exit) used to leave no line for it, so the next
// start took it for a grant the state had lost, carried it over from the
// map and granted it for another grace period.
func TestRewriteKeepsUnpublishedRemovals(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	svc := startService(t, cfg, grants.TableConfig{Grace: time.Hour})
	svc.login(grant("192.0.2.1"), "", t0)
	svc.tick(t0.Add(2 * time.Second))
	if keys := mapKeys(t, dir); len(keys) != 1 {
		t.Fatalf("map after the first login: %v", keys)
	}
	svc.login(grant("192.0.2.2"), "", t0.Add(30*time.Minute))
	svc.tick(t0.Add(31 * time.Minute))
	if keys := mapKeys(t, dir); len(keys) != 2 {
		t.Fatalf("map after the second login: %v", keys)
	}

	// The disk refuses the map from now on; 192.0.2.1 expires.
	svc.writeMapFile = func(string, *grants.Table) error { return errors.New("no space left on device") }
	end := t0.Add(61 * time.Minute)
	svc.tick(end)
	_ = svc.shutdown(end)
	if len(mapKeys(t, dir)) != 2 {
		t.Fatal("the map was replaced although its writes fail")
	}

	again := NewService(cfg, grants.NewTable(grants.TableConfig{Grace: time.Hour}))
	if err := again.Start(end.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, ok := again.table.Lookup(netip.MustParseAddr("192.0.2.1")); ok {
		t.Error("192.0.2.1 expired before the restart and was granted again from the stale map")
	}
	if _, ok := again.table.Lookup(netip.MustParseAddr("192.0.2.2")); !ok {
		t.Error("192.0.2.2 had not expired and was lost")
	}
	if keys := mapKeys(t, dir); len(keys) != 1 || keys[0] != "192.0.2.2" {
		t.Errorf("map after the restart: %v, want [192.0.2.2]", keys)
	}
}

// TestRestoreRefusesUngrantable: a state file written by an older
// relaygate can hold addresses today's rules never grant (the
// IPv4-compatible ::102:304 for ::1.2.3.4, discard-only 100::); a restart
// must not publish them.
func TestRestoreRefusesUngrantable(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.Grantable = func(a netip.Addr) bool { return a != netip.MustParseAddr("::102:304") }
	if err := SaveState(cfg.StatePath, []grants.Grant{
		{Addr: netip.MustParseAddr("::102:304"), Expires: t0.Add(time.Hour)},
		{Addr: netip.MustParseAddr("192.0.2.7"), Expires: t0.Add(time.Hour)},
	}); err != nil {
		t.Fatal(err)
	}
	svc := NewService(cfg, grants.NewTable(grants.TableConfig{Grace: time.Hour}))
	if err := svc.Start(t0); err != nil {
		t.Fatal(err)
	}
	if keys := mapKeys(t, dir); len(keys) != 1 || keys[0] != "192.0.2.7" {
		t.Errorf("map after restoring: %v, want [192.0.2.7]", keys)
	}
}
