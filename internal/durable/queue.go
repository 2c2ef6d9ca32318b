// Package durable holds callbacks until the sequence number each waits for
// is durable: the bridge between the numbers the daemon gives the events
// it hands the grant table and cdbwriter's Config.OnDurable, which reports
// the greatest number whose effect, and that of every event before it, is
// in the state file and synced.
package durable

import "sync"

// Queue holds callbacks until the sequence number each waits for is
// durable, and calls them in the order added. A caller numbers its events
// (increasing, in the order the grant table receives them) and adds each
// callback with the number of its event, or, for something that made no
// event, the last number given before it; Durable(seq) then releases
// everything up to seq. So a callback runs once its own event and every
// event before it would survive a crash.
//
// Safe for concurrent use; Durable never blocks (as long as the callbacks
// do not), so it may run on the goroutine that owns the grant table.
type Queue struct {
	mu      sync.Mutex
	durable uint64
	q       []held // in the order added
	h       int
	sweepAt int // AddUnless sweeps once this many wait (minSweep if 0)
}

type held struct {
	seq  uint64
	f    func()
	gone func() bool // AddUnless's; nil for Add
}

// minSweep is the fewest waiting callbacks AddUnless sweeps: below it,
// what ended sessions leave is too little to matter.
const minSweep = 4096

// Add calls f once seq is durable: at once (on the caller's goroutine) if
// it already is and nothing added before waits. Callbacks are released in
// the order added, so a seq smaller than one added before it waits for
// that one (never early).
func (a *Queue) Add(seq uint64, f func()) {
	a.mu.Lock()
	if seq <= a.durable && a.h == len(a.q) {
		a.mu.Unlock()
		f()
		return
	}
	a.q = append(a.q, held{seq: seq, f: f})
	a.mu.Unlock()
}

// AddUnless is Add for a callback that may become pointless before seq is
// durable (the acknowledgement of a RELP session that has ended): gone
// reports that. While nothing becomes durable (a state file that cannot
// be written) callbacks pile up, and a sender that drops its session and
// sends again would add to them without end; so once the waiting ones
// double, those gone are let go. gone is called with the queue locked: it
// must not block or call the queue. Dropping a callback never releases
// another early: the others keep their order and their seqs.
func (a *Queue) AddUnless(seq uint64, f func(), gone func() bool) {
	a.mu.Lock()
	if seq <= a.durable && a.h == len(a.q) {
		a.mu.Unlock()
		f()
		return
	}
	a.q = append(a.q, held{seq: seq, f: f, gone: gone})
	if len(a.q)-a.h > max(a.sweepAt, minSweep) {
		a.sweep()
	}
	a.mu.Unlock()
}

// sweep drops the waiting callbacks that are gone; called with mu held.
func (a *Queue) sweep() {
	kept := a.q[:0]
	for _, e := range a.q[a.h:] {
		if e.gone == nil || !e.gone() {
			kept = append(kept, e)
		}
	}
	clear(a.q[len(kept):])
	a.q, a.h = kept, 0
	// Sweep again once as many have come again: linear time over all.
	a.sweepAt = 2 * len(kept)
}

// Durable says every seq up to and including seq is durable, and calls
// what waited for it, in order, on the caller's goroutine.
func (a *Queue) Durable(seq uint64) {
	a.mu.Lock()
	if seq > a.durable {
		a.durable = seq
	}
	start := a.h
	for a.h < len(a.q) && a.q[a.h].seq <= a.durable {
		a.h++
	}
	released := a.q[start:a.h]
	var calls []func()
	if len(released) > 0 {
		calls = make([]func(), len(released))
		for i := range released {
			calls[i] = released[i].f
			released[i].f, released[i].gone = nil, nil
		}
	}
	switch {
	case a.h == len(a.q):
		a.q, a.h = a.q[:0], 0
	case a.h >= 1024 && a.h >= len(a.q)/2:
		n := copy(a.q, a.q[a.h:])
		clear(a.q[n:])
		a.q, a.h = a.q[:n], 0
	}
	a.mu.Unlock()
	for _, f := range calls {
		f()
	}
}

// Len is how many callbacks wait.
func (a *Queue) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.q) - a.h
}
