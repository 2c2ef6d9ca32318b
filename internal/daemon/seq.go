package daemon

import "sync"

// sequencer gives grant-table events their Seq: one increasing numbering
// for every input that wants to learn when its events are durable (the
// journal's entries, RELP's logins, the fleet's stream messages), so that
// cdbwriter's single "durable up to Seq" answers each of them. Each input
// keeps its own numbering (a journal entry's number, a stream sequence):
// number maps it to the next Seq, and durable maps a durable Seq back to
// the greatest number of each input that it covers.
//
// The Seqs must reach the grant table in the order they were given: only
// the pipeline goroutine, which sends every such event, calls number,
// just before it sends. durable is cdbwriter's OnDurable, on the table's
// goroutine; neither blocks the other for long.
type sequencer struct {
	mu      sync.Mutex
	last    uint64 // the last Seq given
	sources []*seqSource
}

// seqSource is one input's pending numbers.
type seqSource struct {
	pend    []seqPair // in Seq order
	head    int
	durable func(uint64) // told the input's greatest durable number
}

type seqPair struct{ seq, own uint64 }

// maxSeqPending bounds the numbers an input keeps while the state file
// cannot be written: beyond it every other one is forgotten, which can
// only make an input learn of durability later, never too early.
const maxSeqPending = 1 << 16

// source adds an input; durable is called (on the table's goroutine, so
// it must not block) with the greatest of its numbers now durable.
func (s *sequencer) source(durable func(uint64)) *seqSource {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := &seqSource{durable: durable}
	s.sources = append(s.sources, src)
	return src
}

// number returns the Seq of src's event (or mark) numbered own.
func (s *sequencer) number(src *seqSource, own uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last++
	if n := len(src.pend) - src.head; n >= maxSeqPending {
		kept := src.pend[:0]
		for i, p := range src.pend[src.head:] {
			if i%2 == 1 {
				kept = append(kept, p)
			}
		}
		src.pend, src.head = kept, 0
	} else if src.head > 0 && src.head >= len(src.pend)/2 {
		n := copy(src.pend, src.pend[src.head:])
		src.pend, src.head = src.pend[:n], 0
	}
	src.pend = append(src.pend, seqPair{s.last, own})
	return s.last
}

// durable is cdbwriter's OnDurable: every event up to seq is on disk.
func (s *sequencer) durable(seq uint64) {
	type call struct {
		f   func(uint64)
		own uint64
	}
	var calls []call
	s.mu.Lock()
	for _, src := range s.sources {
		found, own := false, uint64(0)
		for src.head < len(src.pend) && src.pend[src.head].seq <= seq {
			found, own = true, src.pend[src.head].own
			src.head++
		}
		if found {
			calls = append(calls, call{src.durable, own})
		}
	}
	s.mu.Unlock()
	for _, c := range calls {
		c.f(c.own)
	}
}

// journalSeq numbers a journal entry's event or mark (journal.go). On the
// pipeline goroutine, which alone touches d.jsrc.
func (d *Daemon) journalSeq(entry uint64) uint64 {
	if d.jsrc == nil {
		d.jsrc = d.seq.source(d.journalDurable)
	}
	return d.seq.number(d.jsrc, entry)
}
