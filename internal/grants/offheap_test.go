package grants

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/grants/offheap"
)

// TestOffHeapTableArrays: the table keeps its slots, index, expiry heap
// and names outside the Go heap (where the system maps memory), and its
// types that hold strings (package offheap refuses those) on it.
func TestOffHeapTableArrays(t *testing.T) {
	mem := offheap.New()
	defer mem.FreeAll()
	if offheap.Owns(mem, offheap.Slice[session](mem, 4096)) || offheap.Owns(mem, offheap.Slice[meta](mem, 4096)) {
		t.Error("a slice of sessions or metas, which hold strings, was mapped outside the Go heap")
	}
	if !offheap.Owns(mem, offheap.Slice[byte](mem, 4096)) {
		t.Skip("this system does not map memory; the arrays stay on the Go heap")
	}
	tab := NewTable(TableConfig{Grace: time.Hour})
	tab.Login(Grant{Addr: netip.MustParseAddr("192.0.2.1"), User: "u", Daemon: "dovecot"}, "", t0)
	for name, ok := range map[string]bool{
		"slots": offheap.Owns(tab.mem, tab.chunks[0]), "index": offheap.Owns(tab.mem, tab.index.buckets),
		"expiry": offheap.Owns(tab.mem, tab.expiry), "names": offheap.Owns(tab.mem, tab.users.blocks[0]),
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
