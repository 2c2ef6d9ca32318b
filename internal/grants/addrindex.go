package grants

import (
	"hash/maphash"

	"github.com/relaygate/relaygate/internal/grants/offheap"
)

// addrIndex finds a grant's slot by address: open addressing with linear
// probing over slot numbers, 4 bytes a bucket where a Go map of [16]byte
// keys takes about 48 (40 MB at a million grants). The addresses
// themselves are in the slots; the buckets are outside the Go heap
// (package offheap). The hash is seeded per table, so senders
// cannot choose addresses that collide.
type addrIndex struct {
	buckets []int32 // slot+1; 0 is empty
	n       int
	seed    maphash.Seed
}

func newAddrIndex(mem *offheap.Memory) addrIndex {
	return addrIndex{buckets: offheap.Slice[int32](mem, 1024), seed: maphash.MakeSeed()}
}

func (x *addrIndex) home(key *[16]byte) int {
	return int(maphash.Bytes(x.seed, key[:]) & uint64(len(x.buckets)-1))
}

// get returns key's slot.
func (t *Table) get(key [16]byte) (int32, bool) {
	x := &t.index
	for b := x.home(&key); ; b = (b + 1) & (len(x.buckets) - 1) {
		s := x.buckets[b]
		if s == 0 {
			return 0, false
		}
		if t.at(s-1).addr == key {
			return s - 1, true
		}
	}
}

// put adds slot i, whose address is not in the index yet.
func (t *Table) put(i int32) {
	x := &t.index
	if 4*(x.n+1) > 3*len(x.buckets) {
		t.grow()
	}
	b := x.home(&t.at(i).addr)
	for x.buckets[b] != 0 {
		b = (b + 1) & (len(x.buckets) - 1)
	}
	x.buckets[b] = i + 1
	x.n++
}

func (t *Table) grow() { t.resize(2 * len(t.index.buckets)) }

// reserve makes room in the index for n more slots at once, so a restore
// does not rehash everything a dozen times on the way to a million.
func (t *Table) reserve(n int) {
	size := len(t.index.buckets)
	for 4*(t.index.n+n) > 3*size {
		size *= 2
	}
	if size > len(t.index.buckets) {
		t.resize(size)
	}
}

func (t *Table) resize(size int) {
	old := t.index.buckets
	t.index.buckets = offheap.Slice[int32](t.mem, size)
	t.index.n = 0
	for _, s := range old {
		if s != 0 {
			t.put(s - 1)
		}
	}
	offheap.Free(t.mem, old)
}

// del removes slot i. The buckets after it that belong before the hole
// move back into it, so every key stays reachable from its home without
// tombstones.
func (t *Table) del(i int32) {
	x := &t.index
	mask := len(x.buckets) - 1
	hole := x.home(&t.at(i).addr)
	for x.buckets[hole] != i+1 {
		hole = (hole + 1) & mask
	}
	for b := (hole + 1) & mask; x.buckets[b] != 0; b = (b + 1) & mask {
		// Move b's key into the hole unless its home lies cyclically
		// in (hole, b]: then it is already as close to home as it can be.
		h := x.home(&t.at(x.buckets[b] - 1).addr)
		if (b-h)&mask >= (b-hole)&mask {
			x.buckets[hole] = x.buckets[b]
			hole = b
		}
	}
	x.buckets[hole] = 0
	x.n--
}
