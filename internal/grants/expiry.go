package grants

import (
	"cmp"
	"runtime"
	"slices"
	"time"

	"github.com/relaygate/relaygate/internal/grants/offheap"
)

// Expire closes sessions older than the session limit, removes every grant
// without an open session whose expiry is not after now, and returns the
// removed grants.
func (t *Table) Expire(now time.Time) []Grant {
	defer runtime.KeepAlive(t)
	ns := now.UnixNano()
	var gone []Grant
	for len(t.expiry) > 0 && t.expiry[0].at <= ns {
		it := t.expiry.pop()
		if !t.live(it) {
			continue
		}
		e := t.at(it.slot)
		e.queued = 0
		if e.nsess > 0 {
			var lost []session
			for _, s := range t.open[it.slot] {
				if s.opened+int64(t.maxSession) <= ns {
					lost = append(lost, s)
				}
			}
			// Oldest first, so grace runs from the last of them.
			slices.SortFunc(lost, func(a, b session) int { return cmp.Compare(a.opened, b.opened) })
			for _, s := range lost {
				t.closeSession(s.key, s.opened+int64(t.maxSession))
			}
		}
		if e.nsess == 0 && e.expires <= ns {
			gone = append(gone, t.grantAt(it.slot))
			t.remove(it.slot)
			continue
		}
		t.schedule(it.slot)
	}
	return t.removed(gone)
}

// NextExpiry returns when Expire next has work: the earliest expiry of a
// grant without open sessions, or the earliest session limit. False if the
// table is empty.
func (t *Table) NextExpiry() (time.Time, bool) {
	defer runtime.KeepAlive(t)
	for len(t.expiry) > 0 {
		top := t.expiry[0]
		if !t.live(top) {
			t.expiry.pop()
			continue
		}
		if d := t.due(top.slot); d > top.at {
			// Extended since it was queued: move it to its real time.
			t.expiry.pop()
			t.at(top.slot).queued = 0
			t.schedule(top.slot)
			continue
		}
		return time.Unix(0, top.at), true
	}
	return time.Time{}, false
}

// due is when slot i next needs Expire: its expiry, or while it has open
// sessions, when the oldest of them reaches the session limit.
func (t *Table) due(i int32) int64 {
	e := t.at(i)
	if e.nsess == 0 {
		return e.expires
	}
	first := int64(0)
	for _, s := range t.open[i] {
		if first == 0 || s.opened < first {
			first = s.opened
		}
	}
	return first + int64(t.maxSession)
}

// schedule makes sure slot i has a heap item no later than its due time.
// An item that is earlier than needed is corrected when it comes up, so a
// repeat login, which only moves the expiry later, pushes nothing.
func (t *Table) schedule(i int32) {
	e := t.at(i)
	if d := t.due(i); e.queued == 0 || d < e.queued {
		e.queued = d
		t.expiry.push(t.mem, expiryItem{at: d, slot: i, gen: e.gen})
		if len(t.expiry) > 2*t.n+1024 {
			t.compactExpiry()
		}
	}
}

// live reports whether a heap item is its slot's current one; items of
// removed grants and superseded items are skipped.
func (t *Table) live(it expiryItem) bool {
	e := t.at(it.slot)
	return e.gen == it.gen && e.queued == it.at && e.used()
}

// compactExpiry drops dead heap items, so evictions and logouts cannot grow
// the heap beyond a small multiple of the table.
func (t *Table) compactExpiry() {
	kept := t.expiry[:0]
	for _, it := range t.expiry {
		if t.live(it) {
			kept = append(kept, it)
		}
	}
	clear(t.expiry[len(kept):])
	t.expiry = kept
	t.expiry.init()
}

// expiryItem says slot should be looked at, at the latest, at "at".
type expiryItem struct {
	at   int64
	slot int32
	gen  uint16 // the slot's gen when pushed
}

// expiryHeap is a binary min-heap on at. Items are never removed from the
// middle: a removed or rescheduled grant's old item is skipped when it
// reaches the top (see Table.live).
type expiryHeap []expiryItem

// push adds it; the heap's array is grown outside the Go heap.
func (h *expiryHeap) push(mem *offheap.Memory, it expiryItem) {
	if len(*h) == cap(*h) {
		old := *h
		grown := offheap.Slice[expiryItem](mem, max(1024, 2*cap(old)))
		*h = grown[:copy(grown, old)]
		offheap.Free(mem, old)
	}
	*h = append(*h, it)
	h.up(len(*h) - 1)
}

func (h *expiryHeap) pop() expiryItem {
	old := *h
	top := old[0]
	last := len(old) - 1
	old[0] = old[last]
	*h = old[:last]
	if last > 0 {
		h.down(0)
	}
	return top
}

func (h expiryHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h expiryHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].at <= h[i].at {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (h expiryHeap) down(i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && h[c+1].at < h[c].at {
			c++
		}
		if h[i].at <= h[c].at {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}
