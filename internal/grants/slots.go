package grants

import "github.com/relaygate/relaygate/internal/grants/offheap"

// A grant lives in a slot of Table.chunks from its first login to its
// removal; a freed slot is reused. The slots are linked, by number, in
// the order of their last login: head is the least recent, the grant a
// full table evicts.

// newSlot takes a free slot (or a new one) for addr and indexes it; the
// caller links it into the eviction order.
func (t *Table) newSlot(addr [16]byte) int32 {
	var i int32
	if t.free >= 0 {
		i = t.free
		t.free = t.at(i).next
	} else {
		if int(t.slots)>>chunkBits == len(t.chunks) {
			t.chunks = append(t.chunks, offheap.Slice[entry](t.mem, 1<<chunkBits))
		}
		i = t.slots
		t.slots++
	}
	e := t.at(i)
	*e = entry{addr: addr, gen: e.gen + 1, prev: -1, next: -1}
	t.put(i)
	t.n++
	return i
}

// insert adds a grant for addr, evicting the least recently logged-in one
// if the table is full, and returns its slot.
func (t *Table) insert(addr [16]byte) int32 {
	for t.n >= t.maxEntries && t.head >= 0 {
		t.remove(t.head)
		t.evictions++
	}
	i := t.newSlot(addr)
	t.pushBack(i)
	t.members++
	return i
}

// remove deletes slot i, its sessions and its place in the order. Its
// expiry-heap item is left to be skipped when it comes up.
func (t *Table) remove(i int32) {
	e := t.at(i)
	for _, s := range t.open[i] {
		delete(t.sessions, s.key)
	}
	delete(t.open, i)
	t.unlink(i)
	t.clean(i)
	if len(t.gone) < t.maxEntries+4096 {
		t.gone = append(t.gone, e.addr)
	} else {
		t.lostTrack = true
	}
	t.freeSlot(i)
}

// freeSlot returns slot i, already out of the order, sessions and
// unsaved changes, to the free list.
func (t *Table) freeSlot(i int32) {
	e := t.at(i)
	t.del(i)
	t.metas.release(e.meta)
	t.users.release(e)
	*e = entry{next: t.free, gen: e.gen + 1}
	t.free = i
	t.n--
}

func (t *Table) unlink(i int32) {
	e := t.at(i)
	if e.prev >= 0 {
		t.at(e.prev).next = e.next
	} else {
		t.head = e.next
	}
	if e.next >= 0 {
		t.at(e.next).prev = e.prev
	} else {
		t.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

func (t *Table) pushBack(i int32) {
	e := t.at(i)
	e.prev, e.next = t.tail, -1
	if t.tail >= 0 {
		t.at(t.tail).next = i
	} else {
		t.head = i
	}
	t.tail = i
}
