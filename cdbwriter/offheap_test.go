package cdbwriter

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// mapped reports whether s is one of o's mappings.
func mapped[T any](o *offHeap, s []T) bool {
	if cap(s) == 0 {
		return false
	}
	_, ok := o.live[uintptr(unsafe.Pointer(unsafe.SliceData(s[:1])))]
	return ok
}

// TestOffHeapRefusesPointers: memory outside the Go heap is not scanned by
// the collector, so a pointer stored there does not keep its target alive.
// A netip.Addr is such a value (its zone is a unique.Handle), as are
// strings, slices and maps. Whatever type is asked for, offHeapSlice maps
// only pointer-free ones; the rest come from the Go heap.
func TestOffHeapRefusesPointers(t *testing.T) {
	mem := newOffHeap()
	defer mem.freeAll()
	for name, s := range map[string]bool{
		"netip.Addr":   mapped(mem, offHeapSlice[netip.Addr](mem, 4096)),
		"string":       mapped(mem, offHeapSlice[string](mem, 4096)),
		"[]byte":       mapped(mem, offHeapSlice[[]byte](mem, 4096)),
		"*int":         mapped(mem, offHeapSlice[*int](mem, 4096)),
		"session":      mapped(mem, offHeapSlice[session](mem, 4096)),
		"meta":         mapped(mem, offHeapSlice[meta](mem, 4096)),
		"[2]any":       mapped(mem, offHeapSlice[[2]any](mem, 4096)),
		"map":          mapped(mem, offHeapSlice[map[int]int](mem, 4096)),
		"func":         mapped(mem, offHeapSlice[func()](mem, 4096)),
		"chan":         mapped(mem, offHeapSlice[chan int](mem, 4096)),
		"unsafe":       mapped(mem, offHeapSlice[unsafe.Pointer](mem, 4096)),
		"nested field": mapped(mem, offHeapSlice[struct{ a [3]struct{ b, c *byte } }](mem, 4096)),
	} {
		if s {
			t.Errorf("a slice of %s, which holds pointers, was mapped outside the Go heap", name)
		}
	}
	if len(mem.live) != 0 {
		t.Errorf("%d mappings for types with pointers", len(mem.live))
	}
}

// TestOffHeapTypesHoldNoPointers: the element types the table and the cdb
// maker keep outside the Go heap hold no pointers, and (where the system
// maps memory) really are mapped.
func TestOffHeapTypesHoldNoPointers(t *testing.T) {
	for _, typ := range []reflect.Type{
		reflect.TypeFor[entry](), reflect.TypeFor[expiryItem](), reflect.TypeFor[cdbRec](),
		reflect.TypeFor[int32](), reflect.TypeFor[byte](),
	} {
		if hasPointers(typ) {
			t.Errorf("%v holds pointers", typ)
		}
	}
	if _, ok := mapMemory(4096); !ok {
		t.Skip("this system does not map memory; the arrays stay on the Go heap")
	}
	tab := NewTable(TableConfig{Grace: time.Hour})
	tab.Login(Grant{Addr: netip.MustParseAddr("192.0.2.1"), User: "u", Daemon: "dovecot"}, "", t0)
	for name, ok := range map[string]bool{
		"slots": mapped(tab.mem, tab.chunks[0]), "index": mapped(tab.mem, tab.index.buckets),
		"expiry": mapped(tab.mem, tab.expiry), "names": mapped(tab.mem, tab.users.blocks[0]),
	} {
		if !ok {
			t.Errorf("the table's %s are on the Go heap", name)
		}
	}
}

// TestOffHeapNamesOutliveArena: every Grant handed out (Lookup, Grants,
// Expire, SetExclude) owns its strings. The arena they were read from is
// compacted, its blocks unmapped, the index and the expiry heap regrown
// and freed; the grants read before must still say what they said, and
// reading them must not touch unmapped memory (a SIGSEGV).
func TestOffHeapNamesOutliveArena(t *testing.T) {
	tab := NewTable(TableConfig{Grace: time.Hour, MaxEntries: 20000})
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}) }
	name := func(round, i int) string { return fmt.Sprintf("%s-%d-%d", strings.Repeat("n", 200), round, i) }
	now := t0
	for i := range 2000 {
		tab.Login(Grant{Addr: addr(i), User: name(0, i), Daemon: "dovecot", Host: "mx"}, "", now)
	}
	looked, _ := tab.Lookup(addr(7))
	before := tab.Grants()

	// Renames make every old name dead: the arena is compacted over and
	// over. New addresses grow the index and the expiry heap.
	for round := 1; round <= 6; round++ {
		now = now.Add(time.Minute)
		for i := range 2000 {
			tab.Login(Grant{Addr: addr(i), User: name(round, i), Daemon: "dovecot", Host: "mx"}, "", now)
		}
	}
	for i := 2000; i < 12000; i++ {
		tab.Login(Grant{Addr: netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}), User: name(9, i), Daemon: "imap"}, "", now)
	}
	// (Block addresses tell nothing: the system may map a new block where
	// an old one was.) Without a compaction 6×2000 dead names would be
	// counted; the index started at 1024 buckets.
	if tab.users.dead >= 6*2000*200 || len(tab.index.buckets) <= 1024 || cap(tab.expiry) <= 1024 {
		t.Fatal("the arena was never compacted or the index never regrown: the test tests nothing")
	}
	if looked.User != name(0, 7) {
		t.Errorf("Lookup's user became %q", looked.User)
	}
	for i, g := range before {
		if g.User != name(0, int(g.Addr.As4()[2])<<8|int(g.Addr.As4()[3])) || g.Daemon != "dovecot" || g.Host != "mx" {
			t.Fatalf("Grants()[%d] became %+v", i, g)
		}
	}

	// Grants removed hand out their names too, taken before the slot and
	// its name were freed.
	excluded := tab.SetExclude([]netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")})
	expired := tab.Expire(now.Add(2 * time.Hour))
	for round := range 4 {
		for i := range 3000 {
			tab.Login(Grant{Addr: netip.AddrFrom4([4]byte{10, 3, byte(i >> 8), byte(i)}), User: name(20+round, i), Daemon: "pop3"}, "", now)
		}
	}
	if len(excluded) != 2000 || len(expired) != 10000 {
		t.Fatalf("%d excluded and %d expired, want 2000 and 10000", len(excluded), len(expired))
	}
	for _, g := range excluded {
		if !strings.HasPrefix(g.User, strings.Repeat("n", 200)+"-6-") {
			t.Fatalf("excluded grant's user became %q", g.User)
		}
	}
	for _, g := range expired {
		if !strings.HasPrefix(g.User, strings.Repeat("n", 200)+"-9-") {
			t.Fatalf("expired grant's user became %q", g.User)
		}
	}
}

// TestCDBMakerFinishFreesOnce: finish unmaps the records; the maker must
// not keep slices into them, so that nothing (a second finish, a retry
// with the same maker) reads unmapped memory.
func TestCDBMakerFinishFreesOnce(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "map.cdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := newCDBMaker(f, 10000)
	for i := range 10000 {
		m.putAddr(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
	}
	if err := m.finish(); err != nil {
		t.Fatal(err)
	}
	if m.recs != nil || len(m.mem.live) != 0 {
		t.Fatalf("after finish the maker still holds %d records and %d mappings", len(m.recs), len(m.mem.live))
	}
	if err := m.finish(); err == nil {
		t.Error("a second finish succeeded; it would rewrite the header for no records")
	}
}
