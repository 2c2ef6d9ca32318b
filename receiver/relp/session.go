package relp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"
)

// Why a session ended, besides the frame reasons of frame.go. Each is a
// value of the reason label of relaygate_relp_sessions_closed_total.
const (
	reasonClientClose    = "client_close"    // the client's close command, answered
	reasonEOF            = "eof"             // the client closed the connection between frames
	reasonShutdown       = "shutdown"        // Serve's context ended, or Close
	reasonIdle           = "idle"            // nothing for IdleTimeout
	reasonOpenTimeout    = "open_timeout"    // no open within OpenTimeout
	reasonFrameTimeout   = "frame_timeout"   // a frame begun and not finished within FrameTimeout
	reasonIOError        = "io_error"        // reading or writing failed, or a write took over WriteTimeout
	reasonTxnrSequence   = "txnr_sequence"   // a TXNR other than the next one
	reasonUnknownCommand = "unknown_command" // a command relaygate does not serve (rsp, starttls, …)
	reasonNotOpen        = "not_open"        // syslog before open (answered 500)
	reasonAlreadyOpen    = "already_open"    // a second open (answered 500)
	reasonBadOffer       = "bad_offer"       // an open without relp_version or the syslog command (answered 500)
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

// session is one RELP connection: the reader (run, on the accepting
// goroutine) reads frames and hands syslog frames on; the writer answers,
// in order, what is ready, and closes the connection when the session
// ends.
type session struct {
	srv     *Server
	raw     net.Conn // the TCP connection: deadlines and abort go here
	conn    net.Conn // raw, or TLS over it
	peer    netip.AddrPort
	tlsPeer string

	wake   chan struct{} // the writer has something to do
	room   chan struct{} // the window has room again
	stopCh chan struct{} // closed by stop and abort

	mu        sync.Mutex
	q         []entry // q[h:] wait for their answer, ids consecutive
	h         int
	nextID    uint64
	inWindow  int    // syslog entries in q[h:]
	ending    bool   // the reader is done
	reason    string // why the session ends
	stopWhy   string // set by stop and abort
	aborted   bool
	finished  bool // the connection is closed: acks do nothing
	drainDone bool // DrainTimeout has passed since ending
}

func newSession(srv *Server, conn net.Conn, peer netip.AddrPort) *session {
	return &session{
		srv: srv, raw: conn, conn: conn, peer: peer,
		wake: make(chan struct{}, 1), room: make(chan struct{}, 1), stopCh: make(chan struct{}),
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// stop makes the session stop reading and end after draining (shutdown).
func (s *session) stop(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopWhy != "" {
		return
	}
	s.stopWhy = reason
	close(s.stopCh)
	_ = s.raw.SetReadDeadline(time.Unix(1, 0))
}

// abort ends the session now: no drain, no hint.
func (s *session) abort() {
	s.stop(reasonShutdown)
	s.mu.Lock()
	s.aborted = true
	s.mu.Unlock()
	s.raw.Close()
	signal(s.wake)
}

func (s *session) stopped() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopWhy
}

// run serves the session until it ends.
func (s *session) run(ctx context.Context, out chan<- Delivery) {
	srv := s.srv
	if srv.cfg.TLS != nil {
		conn, name, ok := srv.handshake(ctx, s.raw, s.peer.String())
		if !ok {
			s.raw.Close()
			return
		}
		s.conn, s.tlsPeer = conn, name
	}
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); s.writeLoop() }()
	reason, err := s.readLoop(out)
	s.mu.Lock()
	s.ending, s.reason = true, reason
	s.mu.Unlock()
	signal(s.wake)
	<-writerDone
	srv.stats.countClosed(reason)
	s.logEnd(reason, err)
}

func (s *session) logEnd(reason string, err error) {
	srv := s.srv
	peer := s.peer.String()
	switch reason {
	case reasonClientClose, reasonEOF, reasonShutdown:
		srv.log.Debug().Str("peer", peer).Str("reason", reason).Msg("RELP session ended")
	case reasonIdle:
		srv.logLimited(srv.log.Info, reason, peer, fmt.Sprintf("closed RELP session idle for %s (-idle-timeout)", srv.cfg.IdleTimeout))
	default:
		msg := "closed RELP session: " + reason
		if err != nil {
			msg += ": " + err.Error()
		}
		srv.logLimited(srv.log.Warn, reason, peer, msg)
	}
}

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
		// Inside a frame: all of it within FrameTimeout.
		if why := s.setReadDeadline(time.Now().Add(cfg.FrameTimeout)); why != "" {
			return why, nil
		}
		f, err := fr.next()
		if err != nil {
			return s.readErr(err, reasonFrameTimeout)
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
			_ = s.raw.SetWriteDeadline(deadline)
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
