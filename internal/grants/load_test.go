package grants

import (
	"net/netip"
	"testing"
	"time"
)

// The Loader is held to Restore over random state files by cdbwriter's
// TestTableLoadMatchesRestore, which reads them as a start does; these
// tests cover what a file cannot show.

// TestLoaderAbandon: what a load put in the table before a read error
// goes, and the table works as a new one.
func TestLoaderAbandon(t *testing.T) {
	tab := NewTable(TableConfig{Grace: time.Hour, MaxEntries: 100})
	l, err := NewLoader(tab, func(netip.Addr) bool { return true }, t0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		g := grant(netip.AddrFrom4([4]byte{198, 51, byte(i / 250), byte(1 + i%250)}).String())
		g.Expires = t0.Add(time.Hour)
		l.Put(&g)
	}
	if tab.Len() != 300 || !l.Accounted(netip.MustParseAddr("198.51.0.1")) {
		t.Fatalf("loaded %d grants, want 300", tab.Len())
	}
	l.Abandon()
	l.Finish()
	if tab.Len() != 0 || len(tab.Grants()) != 0 || tab.head >= 0 {
		t.Fatalf("after abandon: %d grants", tab.Len())
	}
	ref := newRefTable(TableConfig{Grace: time.Hour, MaxEntries: 100})
	for i := range 150 {
		g := Grant{Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), User: "u"}
		if a, b := tab.Login(g, "", t0), ref.Login(refGrant{Addr: g.Addr, User: "u"}, "", t0); a != b {
			t.Fatalf("Login %v = %v, reference %v", g.Addr, a, b)
		}
	}
	same(t, "after abandon", tab, ref)
}

// TestLoaderNeedsAnEmptyTable: the order of eviction and expiry Finish
// builds has no room for grants already in the table.
func TestLoaderNeedsAnEmptyTable(t *testing.T) {
	tab := NewTable(TableConfig{Grace: time.Hour})
	tab.Login(grant("192.0.2.1"), "", t0)
	if _, err := NewLoader(tab, func(netip.Addr) bool { return true }, t0); err == nil {
		t.Fatal("NewLoader took a table that holds a grant")
	}
}
