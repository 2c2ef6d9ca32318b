package relp

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestAcks(t *testing.T) {
	var a Acks
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
		t.Fatalf("an ack for a durable seq waited: %v", got)
	}
}

// TestAcksWithSessions: the daemon's way, with a real session: messages
// numbered as events, acks released by Durable in groups, answers in
// order.
func TestAcksWithSessions(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.Addr())
	c.open()
	var acks Acks
	var txnrs []uint32
	var seq uint64
	for i := range 10 {
		txnrs = append(txnrs, c.send(cmdSyslog, fmt.Sprint(i)))
		d := ts.next(t)
		if i%3 == 0 { // a login: a new event
			seq++
		}
		acks.Add(seq, d.Ack)
	}
	c.expectNothing(50 * time.Millisecond)
	acks.Durable(2) // covers messages 0..5
	for i := range 6 {
		c.expectRsp(txnrs[i], rspOK)
	}
	c.expectNothing(50 * time.Millisecond)
	acks.Durable(4)
	for i := 6; i < 10; i++ {
		c.expectRsp(txnrs[i], rspOK)
	}
}

func TestAcksConcurrent(t *testing.T) {
	var a Acks
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
