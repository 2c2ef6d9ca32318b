package cdbwriter

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

// push adds it; the heap's array is grown outside the Go heap (offheap.go).
func (h *expiryHeap) push(mem *offHeap, it expiryItem) {
	if len(*h) == cap(*h) {
		old := *h
		grown := offHeapSlice[expiryItem](mem, max(1024, 2*cap(old)))
		*h = grown[:copy(grown, old)]
		offHeapFree(mem, old)
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
