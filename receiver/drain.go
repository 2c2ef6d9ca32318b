package receiver

import (
	"sync"
	"syscall"
	"time"
)

// Draining the datagram sockets when Serve's context ends: what a datagram
// socket holds when it closes is lost without a trace.

// Drain bounds: once Serve's context ends, the UDP and unix sockets are
// read until they are empty and have been quiet for drainQuiet, for at
// most drainMax. What a datagram socket holds when it closes is lost
// without a trace (not even a drop count), and after a takeover's Steer
// nothing new arrives, so the queue empties in the time it takes to read
// it.
const (
	drainQuiet = 20 * time.Millisecond
	drainMax   = time.Second
)

// datagramConn is what the drain needs of a datagram socket: its read
// deadline, and its descriptor to ask whether anything is still queued.
type datagramConn interface {
	SetReadDeadline(time.Time) error
	syscall.Conn
}

// drain lets the datagram readers read until their sockets are empty and
// quiet. A consumer that stopped reading out does not hold it past the
// drain's end.
func (r *Receiver) drain(readers *sync.WaitGroup) {
	now := time.Now()
	end := now.Add(drainMax)
	r.drainEnd.Store(end.UnixNano())
	if r.udp != nil {
		r.udp.SetReadDeadline(now.Add(r.drainQuiet))
	}
	if r.unix != nil {
		r.unix.SetReadDeadline(now.Add(r.drainQuiet))
	}
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	t := time.NewTimer(time.Until(end) + r.drainQuiet)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// draining reports whether Serve is draining, and moves conn's read
// deadline on by drainQuiet (up to the drain's end) after a read that
// found something.
func (r *Receiver) draining(conn datagramConn, read bool) bool {
	end := r.drainEnd.Load()
	if end == 0 {
		return false
	}
	if read {
		conn.SetReadDeadline(time.Unix(0, min(time.Now().Add(r.drainQuiet).UnixNano(), end)))
	}
	return true
}

// drainOver decides, after a read of conn timed out while draining,
// whether the reader stops. A timeout alone proves nothing: a reader
// that waited longer than drainQuiet on its consumer, or that the
// scheduler started late on a loaded machine, finds its deadline passed
// with the socket still full. So it stops only on an empty socket, or at
// the drain's end, when what is left is logged as lost (the process is
// stopping: the log outlives /metrics).
func (r *Receiver) drainOver(conn datagramConn, transport string) bool {
	if !queued(conn) {
		return true
	}
	if end := r.drainEnd.Load(); time.Now().UnixNano() < end {
		// Something is waiting, so the next read does not block: it
		// may run until the drain's end, and the read moves the
		// deadline back to drainQuiet.
		conn.SetReadDeadline(time.Unix(0, end))
		return false
	}
	r.log.Warn().Str("transport", transport).Dur("drain_max", drainMax).
		Msg("stopped draining with datagrams still queued: they are lost with the socket")
	return true
}
