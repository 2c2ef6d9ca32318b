package durable

import (
	"slices"
	"sync"
	"testing"
)

func TestQueue(t *testing.T) {
	var a Queue
	var got []string
	rec := func(name string) func() { return func() { got = append(got, name) } }
	a.Add(0, rec("no event yet")) // nothing to wait for
	a.Add(1, rec("login 1"))
	a.Add(1, rec("dropped after 1"))
	a.Add(2, rec("login 2"))
	a.Add(3, rec("login 3"))
	if want := []string{"no event yet"}; !slices.Equal(got, want) {
		t.Fatalf("before any sync: %v", got)
	}
	a.Durable(2)
	if want := []string{"no event yet", "login 1", "dropped after 1", "login 2"}; !slices.Equal(got, want) {
		t.Fatalf("after Durable(2): %v", got)
	}
	if a.Len() != 1 {
		t.Fatalf("Len %d, want 1", a.Len())
	}
	a.Durable(1) // going back does nothing
	a.Add(2, rec("dropped after 2, behind 3"))
	a.Add(3, rec("dropped after 3"))
	if len(got) != 4 {
		t.Fatalf("released early: %v", got)
	}
	a.Durable(3)
	if want := []string{"no event yet", "login 1", "dropped after 1", "login 2", "login 3", "dropped after 2, behind 3", "dropped after 3"}; !slices.Equal(got, want) {
		t.Fatalf("after Durable(3): %v", got)
	}
	a.Add(3, rec("late"))
	if got[len(got)-1] != "late" || a.Len() != 0 {
		t.Fatalf("a callback for a durable seq waited: %v", got)
	}
}

// The queue compacts itself while a long backlog drains in steps.
func TestQueueCompacts(t *testing.T) {
	var a Queue
	n := 0
	for i := range 5000 {
		a.Add(uint64(i+1), func() { n++ })
	}
	for s := uint64(100); s <= 5000; s += 100 {
		a.Durable(s)
		if n != int(s) || a.Len() != 5000-int(s) {
			t.Fatalf("after Durable(%d): released %d, %d waiting", s, n, a.Len())
		}
	}
}

func TestQueueConcurrent(t *testing.T) {
	var a Queue
	var mu sync.Mutex
	n := 0
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range 10000 {
			a.Add(uint64(i/3), func() { mu.Lock(); n++; mu.Unlock() })
		}
	}()
	go func() {
		defer wg.Done()
		for s := range 4000 {
			a.Durable(uint64(s))
		}
	}()
	wg.Wait()
	a.Durable(1 << 40)
	if n != 10000 || a.Len() != 0 {
		t.Fatalf("released %d of 10000, %d waiting", n, a.Len())
	}
}

// TestQueueAddUnlessLetsGoneGo: while nothing is durable, callbacks whose
// gone reports true are dropped once the waiting ones pile up; the others
// keep their order, none is released early, and the queue stays about the
// size of what is still wanted however many come and go.
func TestQueueAddUnlessLetsGoneGo(t *testing.T) {
	var a Queue
	var got []uint64
	live := func() bool { return false }
	seq := uint64(0)
	// A live session's callbacks, then many of sessions that end.
	for range 100 {
		seq++
		s := seq
		a.AddUnless(s, func() { got = append(got, s) }, live)
	}
	for range 50 {
		ended := new(bool)
		for range 1000 {
			seq++
			a.AddUnless(seq, func() { t.Error("a gone callback ran") }, func() bool { return *ended })
		}
		*ended = true // that session ended: its callbacks are pointless
		if a.Len() > 2*minSweep+1000+100 {
			t.Fatalf("%d waiting", a.Len())
		}
	}
	seq++
	s := seq
	a.Add(s, func() { got = append(got, s) })
	if len(got) != 0 {
		t.Fatalf("released before anything was durable: %v", got)
	}
	a.Durable(50)
	if len(got) != 50 || got[49] != 50 {
		t.Fatalf("after Durable(50): %v", got)
	}
	// The gone ones still queued are dropped by the next sweeps, never
	// run.
	for range 2 * minSweep {
		seq++
		a.AddUnless(seq, func() {}, func() bool { return true })
	}
	a.Durable(seq)
	if len(got) != 101 || got[100] != s {
		t.Fatalf("after Durable(%d): %d released, last %d", seq, len(got), got[len(got)-1])
	}
	if a.Len() != 0 {
		t.Fatalf("%d waiting after everything is durable", a.Len())
	}
}
