package grants

import (
	"math/bits"
	"net/netip"
	"runtime"
)

// The state file is a journal: between two whole rewrites its writer
// appends a line for each grant changed and a tombstone for each address
// removed since its last save. The table keeps those books, a bit per
// slot and a list of removed addresses, so a save costs O(changes), not
// O(grants).

// touch records a change to slot i that the state file must get.
func (t *Table) touch(i int32) {
	t.changes++
	w, bit := int(i>>6), uint64(1)<<(i&63)
	if w >= len(t.dirty) {
		t.dirty = append(t.dirty, make([]uint64, w+1-len(t.dirty))...)
	}
	if t.dirty[w]&bit == 0 {
		t.dirty[w] |= bit
		t.ndirty++
	}
}

func (t *Table) clean(i int32) {
	w, bit := int(i>>6), uint64(1)<<(i&63)
	if w < len(t.dirty) && t.dirty[w]&bit != 0 {
		t.dirty[w] &^= bit
		t.ndirty--
	}
}

// Unsaved is how many lines an incremental save would append, or -1 when
// only a whole new file can bring the state file up to date: more
// addresses were removed than the table keeps track of.
func (t *Table) Unsaved() int {
	if t.lostTrack {
		return -1
	}
	return t.ndirty + len(t.gone)
}

// EachUnsaved calls removed for every address removed and then changed for
// every grant changed since the last Saved. Removals go first: an address
// removed and granted again is changed, and its last line must be the
// grant. The Record is lent as Each lends it.
func (t *Table) EachUnsaved(changed func(r *Record), removed func(a netip.Addr)) {
	defer runtime.KeepAlive(t)
	for _, a := range t.gone {
		removed(netip.AddrFrom16(a).Unmap())
	}
	var r Record
	for w, word := range t.dirty {
		for ; word != 0; word &= word - 1 {
			i := int32(w<<6 + bits.TrailingZeros64(word))
			t.record(&r, i, t.at(i))
			changed(&r)
		}
	}
}

// Saved records that the state file now holds the whole table.
func (t *Table) Saved() {
	clear(t.dirty)
	t.ndirty = 0
	t.gone = t.gone[:0]
	t.lostTrack = false
}
