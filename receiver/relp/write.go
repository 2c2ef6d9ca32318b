package relp

import (
	"io"
	"time"
)

// noDrain lists the ends after which nothing can be written: the client
// is gone.
func noDrain(reason string) bool {
	return reason == reasonEOF || reason == reasonIOError || reason == reasonTruncated
}

// writeLoop answers, in order, every entry that is ready, a batch per
// write; once the reader is done it drains (up to DrainTimeout) and ends
// the session: the serverclose hint, then the close.
func (s *session) writeLoop() {
	cfg := &s.srv.cfg
	var (
		buf        []byte
		drainTimer *time.Timer
		drainC     <-chan time.Time
		drainBy    time.Time
	)
	defer func() {
		if drainTimer != nil {
			drainTimer.Stop()
		}
	}()
	for {
		select {
		case <-s.wake:
		case <-drainC:
			s.mu.Lock()
			s.drainDone = true
			s.mu.Unlock()
			drainC = nil
		}
		s.mu.Lock()
		buf = buf[:0]
		last, answered, acked := false, 0, 0
		for s.h < len(s.q) && s.q[s.h].ready {
			e := &s.q[s.h]
			text := e.text
			if text == "" {
				text = rspOK
			}
			buf = appendRsp(buf, e.txnr, text)
			if e.syslog {
				answered++
			}
			if e.counted {
				acked++
			}
			last = e.last
			s.h++
			if last {
				break
			}
		}
		s.compact()
		s.inWindow -= answered
		ending, reason, aborted := s.ending, s.reason, s.aborted
		empty := s.h == len(s.q)
		drainDone := s.drainDone
		s.mu.Unlock()
		if acked > 0 {
			s.srv.stats.acked.Add(int64(acked))
			s.srv.stats.unanswered.Add(-int64(acked))
		}
		if answered > 0 {
			signal(s.room)
		}
		if aborted || (ending && noDrain(reason)) {
			s.finish(false)
			return
		}
		if ending && drainTimer == nil {
			drainBy = time.Now().Add(cfg.DrainTimeout)
			drainTimer = time.NewTimer(cfg.DrainTimeout)
			drainC = drainTimer.C
		}
		if len(buf) > 0 {
			deadline := time.Now().Add(cfg.WriteTimeout)
			if ending && drainBy.Before(deadline) {
				deadline = drainBy
			}
			s.setWriteDeadline(deadline)
			if _, err := s.conn.Write(buf); err != nil {
				s.mu.Lock()
				aborted := s.aborted
				s.mu.Unlock()
				if !aborted {
					s.srv.logLimited(s.srv.log.Warn, "write", s.peer.String(), "RELP session: writing answers failed: "+err.Error())
				}
				// The reader stops waiting and sees the closed
				// connection.
				s.stop(reasonIOError)
				s.finish(false)
				return
			}
		}
		if last || (ending && (empty || drainDone)) {
			s.finish(true)
			return
		}
	}
}

// setWriteDeadline sets the write deadline t, or stop's stopBy if that
// comes first; under mu, so that a stop between the two cannot be undone.
func (s *session) setWriteDeadline(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopBy.IsZero() && s.stopBy.Before(t) {
		t = s.stopBy
	}
	_ = s.raw.SetWriteDeadline(t)
}

// finish closes the connection, after the serverclose hint if hint; acks
// from then on do nothing.
func (s *session) finish(hint bool) {
	if hint {
		_ = s.raw.SetWriteDeadline(time.Now().Add(min(s.srv.cfg.WriteTimeout, time.Second)))
		_, _ = io.WriteString(s.conn, serverCloseHint)
	}
	s.raw.Close()
	s.mu.Lock()
	s.finished = true
	n := int64(0)
	for _, e := range s.q[s.h:] {
		if e.counted {
			n++
		}
	}
	s.q, s.h = nil, 0
	s.mu.Unlock()
	s.srv.stats.unanswered.Add(-n)
}
