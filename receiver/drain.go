package receiver

import (
	"sync"
	"time"
)

// Draining the datagram sockets when Serve's context ends: what a datagram
// socket holds when it closes is lost without a trace.

// Drain bounds: once Serve's context ends, the UDP and unix sockets are
// read until they have been quiet for drainQuiet, for at most drainMax.
// What a datagram socket holds when it closes is lost without a trace
// (not even a drop count), and after a takeover's Steer nothing new
// arrives, so the queue empties in the time it takes to read it.
const (
	drainQuiet = 20 * time.Millisecond
	drainMax   = time.Second
)

// drain lets the datagram readers read until their sockets are quiet. A
// consumer that stopped reading out does not hold it past the drain's
// end.
func (r *Receiver) drain(readers *sync.WaitGroup) {
	now := time.Now()
	end := now.Add(drainMax)
	r.drainEnd.Store(end.UnixNano())
	if r.udp != nil {
		r.udp.SetReadDeadline(now.Add(drainQuiet))
	}
	if r.unix != nil {
		r.unix.SetReadDeadline(now.Add(drainQuiet))
	}
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	t := time.NewTimer(time.Until(end) + drainQuiet)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// draining reports whether Serve is draining, and moves conn's read
// deadline on by drainQuiet (up to the drain's end) after a read that
// found something.
func (r *Receiver) draining(conn interface{ SetReadDeadline(time.Time) error }, read bool) bool {
	end := r.drainEnd.Load()
	if end == 0 {
		return false
	}
	if read {
		conn.SetReadDeadline(time.Unix(0, min(time.Now().Add(drainQuiet).UnixNano(), end)))
	}
	return true
}
