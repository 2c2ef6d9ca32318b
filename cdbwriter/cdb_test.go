package cdbwriter

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/relaygate/relaygate/internal/grants/offheap"
)

// TestCDBMakerFinishFreesOnce: the maker's records are outside the Go
// heap (where the system maps memory); finish unmaps them, and the maker
// must not keep slices into them, so that nothing (a second finish, a
// retry with the same maker) reads unmapped memory.
func TestCDBMakerFinishFreesOnce(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "map.cdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := newCDBMaker(f, 10000)
	if probe := offheap.New(); offheap.Owns(probe, offheap.Slice[byte](probe, 4096)) && !offheap.Owns(m.mem, m.recs) {
		t.Error("the maker's records are on the Go heap")
	}
	for i := range 10000 {
		m.putAddr(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
	}
	if err := m.finish(); err != nil {
		t.Fatal(err)
	}
	if m.recs != nil || m.mem.Mappings() != 0 {
		t.Fatalf("after finish the maker still holds %d records and %d mappings", len(m.recs), m.mem.Mappings())
	}
	if err := m.finish(); err == nil {
		t.Error("a second finish succeeded; it would rewrite the header for no records")
	}
}
