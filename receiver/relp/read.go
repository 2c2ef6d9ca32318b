package relp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// readLoop reads frames until the session must end, and says why.
func (s *session) readLoop(out chan<- Delivery) (string, error) {
	srv := s.srv
	cfg := &srv.cfg
	fr := newFrameReader(s.conn, cfg.MaxMessage)
	opened := false
	expect := uint32(1)
	openBy := time.Now().Add(cfg.OpenTimeout)
	for {
		// Between frames: wait for the open, or for IdleTimeout.
		var idle time.Time
		waiting := reasonIdle
		if !opened {
			idle, waiting = openBy, reasonOpenTimeout
		} else if cfg.IdleTimeout > 0 {
			idle = time.Now().Add(cfg.IdleTimeout)
		}
		if why := s.setReadDeadline(idle); why != "" {
			return why, nil
		}
		if _, err := fr.r.Peek(1); err != nil {
			return s.readErr(err, waiting)
		}
		// Inside a frame: all of it within FrameTimeout, and before the
		// open, by openBy too: otherwise a client could hold an unopened
		// session for ever with hints (ignored) whose next first octet is
		// always already buffered, so that Peek never waits.
		frameBy, late := time.Now().Add(cfg.FrameTimeout), reasonFrameTimeout
		if !opened && openBy.Before(frameBy) {
			frameBy, late = openBy, reasonOpenTimeout
		}
		if why := s.setReadDeadline(frameBy); why != "" {
			return why, nil
		}
		f, err := fr.next()
		if err != nil {
			return s.readErr(err, late)
		}
		if f.txnr == 0 {
			// A hint: none is defined from a client, and a hint needs
			// no answer.
			srv.stats.hints.Add(1)
			continue
		}
		if f.txnr != expect {
			return reasonTxnrSequence, fmt.Errorf("TXNR %d, want %d", f.txnr, expect)
		}
		expect = nextTxnr(expect)
		switch f.command {
		case cmdOpen:
			if opened {
				s.push(entry{txnr: f.txnr, ready: true, last: true, text: "500 protocol error: connection already open"})
				return reasonAlreadyOpen, nil
			}
			offers, err := parseOffers(f.data)
			if err != nil {
				text := "500 " + err.Error()
				if errors.Is(err, errNoSyslog) {
					text = "500 required command not supported by client"
				}
				s.push(entry{txnr: f.txnr, ready: true, last: true, text: text})
				return reasonBadOffer, err
			}
			s.push(entry{txnr: f.txnr, ready: true, text: openAnswer(offers.version, cfg.Software)})
			opened = true
			srv.log.Debug().Str("peer", s.peer.String()).Str("tls_peer", s.tlsPeer).Str("software", offers.software).
				Int("relp_version", offers.version).Msg("RELP session open")
		case cmdSyslog:
			if !opened {
				s.push(entry{txnr: f.txnr, ready: true, last: true, text: "500 command disabled"})
				return reasonNotOpen, errors.New("syslog before open")
			}
			if !s.waitRoom() {
				return s.stopped(), nil
			}
			if f.skipped > 0 {
				srv.stats.tooLong.Add(1)
				srv.logLimited(srv.log.Warn, "too_long", s.peer.String(), fmt.Sprintf("skipped a RELP syslog message of %d bytes, over the message size limit of %d; it is acknowledged and the session goes on", f.skipped, cfg.MaxMessage))
				s.push(entry{txnr: f.txnr, ready: true, syslog: true})
				continue
			}
			d := Delivery{Raw: bytes.Clone(f.data), Peer: s.peer, TLSPeer: s.tlsPeer, Received: cfg.Now(), s: s}
			if d.Raw == nil {
				d.Raw = []byte{}
			}
			var ok bool
			if d.id, ok = s.push(entry{txnr: f.txnr, syslog: true, counted: true}); !ok {
				return s.stopped(), nil
			}
			select {
			case out <- d:
				srv.stats.received.Add(1)
			case <-s.stopCh:
				// Never handed on: never answered; the client sends it
				// again.
				s.unpush(d.id)
				return s.stopped(), nil
			}
		case cmdClose:
			// Answered once everything before it is (librelp answers at
			// once, having answered the rest already); then the
			// serverclose hint, and the end.
			s.push(entry{txnr: f.txnr, ready: true, last: true})
			return reasonClientClose, nil
		default:
			return reasonUnknownCommand, fmt.Errorf("command %s", strconv.Quote(string(f.raw)))
		}
	}
}

// setReadDeadline sets the read deadline unless the session is stopping;
// then it returns why. (stop sets the flag before its own deadline, so a
// reader that sets a later one after it still sees the flag.)
func (s *session) setReadDeadline(t time.Time) string {
	_ = s.raw.SetReadDeadline(t)
	return s.stopped()
}

// readErr names the reason of a read error; timeout is the reason a
// deadline means where the reader was.
func (s *session) readErr(err error, timeout string) (string, error) {
	if why := s.stopped(); why != "" {
		return why, nil
	}
	if reason, ok := frameReason(err); ok {
		return reason, err
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return timeout, nil
	}
	if errors.Is(err, io.EOF) {
		return reasonEOF, nil
	}
	return reasonIOError, err
}

// waitRoom waits until the window has room for one more syslog frame; it
// reports false if the session is stopped meanwhile. While it waits the
// connection is not read, and TCP holds the sender back.
func (s *session) waitRoom() bool {
	window := s.srv.cfg.Window
	s.mu.Lock()
	full := s.inWindow >= window
	s.mu.Unlock()
	if !full {
		return true
	}
	s.srv.stats.windowFull.Add(1)
	for {
		select {
		case <-s.room:
		case <-s.stopCh:
			return false
		}
		s.mu.Lock()
		full = s.inWindow >= window
		s.mu.Unlock()
		if !full {
			return true
		}
	}
}
