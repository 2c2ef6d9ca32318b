package relp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
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
	inWindow  int       // syslog entries in q[h:]
	ending    bool      // the reader is done
	reason    string    // why the session ends
	stopWhy   string    // set by stop and abort
	stopBy    time.Time // stop's time plus DrainTimeout: no write may last longer
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
	// A write already blocked on a client that does not read would
	// otherwise hold the stop for the whole WriteTimeout, not the drain's
	// DrainTimeout. Under mu, as the writer sets its deadlines: the later
	// of the two calls wins, and both respect stopBy.
	s.stopBy = time.Now().Add(s.srv.cfg.DrainTimeout)
	_ = s.raw.SetWriteDeadline(s.stopBy)
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
