package relp

import "sync"

// Acks holds acknowledgements until the sequence number each waits for is
// durable. It is the bridge between the pipeline and cdbwriter's
// Config.OnDurable: the pipeline numbers its grant events (grants.Event.Seq,
// increasing) and adds each message's ack with the Seq of its event, or,
// for a message that made none (not a login, an unwanted program,
// malformed), the last Seq given before it; OnDurable(seq) calls Durable.
// A message is then answered once its own login and every login before it
// would survive a crash.
//
// Safe for concurrent use; Durable never blocks (Delivery.Ack does not),
// so it may run on the goroutine that owns the grant table.
type Acks struct {
	mu      sync.Mutex
	durable uint64
	q       []heldAck // in the order added
	h       int
}

type heldAck struct {
	seq uint64
	ack func()
}

// Add calls ack once seq is durable: at once if it already is. Acks are
// released in the order added, so a seq smaller than one added before it
// waits for that one (never early).
func (a *Acks) Add(seq uint64, ack func()) {
	a.mu.Lock()
	if seq <= a.durable && a.h == len(a.q) {
		a.mu.Unlock()
		ack()
		return
	}
	a.q = append(a.q, heldAck{seq: seq, ack: ack})
	a.mu.Unlock()
}

// Durable says every seq up to and including seq is durable, and releases
// what waited for it.
func (a *Acks) Durable(seq uint64) {
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
			calls[i] = released[i].ack
			released[i].ack = nil
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

// Len is how many acks wait.
func (a *Acks) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.q) - a.h
}
