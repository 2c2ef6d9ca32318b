package relp

import (
	"net/netip"
	"time"
)

// Delivery is one syslog message received over RELP. The consumer owns
// Raw. The sender is answered for this message only once Ack has been
// called for it and for every message the session received before it
// (RELP answers in the order of the commands); until then the sender
// keeps it, and sends it again on a new session if this one ends first.
type Delivery struct {
	Raw      []byte         // the message as sent (the frame's DATA; rsyslog sends no trailing LF)
	Peer     netip.AddrPort // the sender, IPv4 unmapped
	TLSPeer  string         // the verified client certificate's CN or first DNS name; "" without one
	Received time.Time      // Config.Now when the frame was read

	s  *session
	id uint64
}

// Ack says the message is delivered: its effect is durable, or it was
// dropped on purpose (not a login, not wanted, malformed). It may be
// called from any goroutine, in any order, more than once, and after the
// session ended (then it does nothing). It never blocks.
func (d Delivery) Ack() {
	if d.s != nil {
		d.s.ack(d.id)
	}
}

// Gone reports whether the message's session has ended: an Ack would do
// nothing, and the sender sends the message again if it was not
// answered. A consumer that holds acknowledgements while nothing becomes
// durable lets these go (durable.Queue.AddUnless). It never blocks.
func (d Delivery) Gone() bool {
	if d.s == nil {
		return true
	}
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	return d.s.finished
}

// entry is a command waiting for its answer, in the order received.
type entry struct {
	id      uint64
	txnr    uint32
	ready   bool   // may be answered (acknowledged, or answered by the session itself)
	syslog  bool   // a syslog frame: counts in the window
	counted bool   // in Stats.unanswered (a syslog frame handed on)
	last    bool   // the session ends once this is answered (close, or a 500)
	text    string // the answer; rspOK if empty
}

// push queues e for its answer and returns its id; false if the session
// has already finished (its writer failed): nothing will be answered.
func (s *session) push(e entry) (uint64, bool) {
	s.mu.Lock()
	if s.finished {
		s.mu.Unlock()
		return 0, false
	}
	e.id = s.nextID
	s.nextID++
	s.q = append(s.q, e)
	if e.syslog {
		s.inWindow++
	}
	if e.counted {
		s.srv.stats.unanswered.Add(1)
	}
	head := len(s.q)-1 == s.h
	s.mu.Unlock()
	if e.ready && head {
		signal(s.wake)
	}
	return e.id, true
}

// unpush takes back the entry just pushed (it was never handed on).
func (s *session) unpush(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.q); n > s.h && s.q[n-1].id == id && !s.finished {
		if s.q[n-1].counted {
			s.srv.stats.unanswered.Add(-1)
		}
		if s.q[n-1].syslog {
			s.inWindow--
		}
		s.q = s.q[:n-1]
		s.nextID--
	}
}

func (s *session) ack(id uint64) {
	s.mu.Lock()
	if s.finished || s.h >= len(s.q) {
		s.mu.Unlock()
		return
	}
	first := s.q[s.h].id
	if id < first || id-first >= uint64(len(s.q)-s.h) {
		s.mu.Unlock()
		return // answered already, or never handed out
	}
	s.q[s.h+int(id-first)].ready = true
	s.mu.Unlock()
	if id == first {
		signal(s.wake)
	}
}

// compact reclaims the answered front of the queue; called with mu held.
func (s *session) compact() {
	switch {
	case s.h == len(s.q):
		s.q, s.h = s.q[:0], 0
	case s.h >= 64 && s.h >= len(s.q)/2:
		n := copy(s.q, s.q[s.h:])
		s.q, s.h = s.q[:n], 0
	}
}
