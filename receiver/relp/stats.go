package relp

import (
	"sync/atomic"

	"github.com/relaygate/relaygate/internal/metric"
	"github.com/rs/zerolog"
)

// closeReasons are every reason a session ends, in the order Samples
// describes them: how it ended normally, the limits, then every protocol
// error (the frame reasons of frame.go and the session's own).
var closeReasons = [...]string{
	reasonClientClose, reasonEOF, reasonShutdown, reasonIdle, reasonOpenTimeout, reasonFrameTimeout, reasonIOError,
	reasonBadTxnr, reasonBadCommand, reasonBadDatalen, reasonBadTrailer, reasonTooLong, reasonTruncated,
	reasonTxnrSequence, reasonUnknownCommand, reasonNotOpen, reasonAlreadyOpen, reasonBadOffer,
}

// Refusals at accept, before a session begins.
const (
	refusedNotAllowed = "not_allowed"
	refusedMaxConns   = "max_conns"
	refusedPerHost    = "per_host"
	refusedTLS        = "tls"
)

var refuseReasons = [...]string{refusedNotAllowed, refusedMaxConns, refusedPerHost, refusedTLS}

// Stats counts what the RELP listener saw; it is safe for concurrent use
// and read through Samples. The zero value is ready. A daemon keeps one
// Stats across reloads by passing it in Config.
type Stats struct {
	received   atomic.Int64 // syslog frames handed to the consumer
	acked      atomic.Int64 // syslog frames answered "200 OK"
	tooLong    atomic.Int64 // syslog frames over the size limit, skipped and answered
	hints      atomic.Int64 // frames with TXNR 0 (hints), ignored
	accepted   atomic.Int64 // connections taken into service
	open       atomic.Int64 // gauge: sessions open now
	unanswered atomic.Int64 // gauge: syslog frames received and not yet answered
	windowFull atomic.Int64 // times a session stopped reading: Window frames unanswered

	closed  [len(closeReasons)]atomic.Int64
	refused [len(refuseReasons)]atomic.Int64
}

func (s *Stats) countClosed(reason string) {
	for i, r := range closeReasons {
		if r == reason {
			s.closed[i].Add(1)
			return
		}
	}
}

func (s *Stats) countRefused(reason string) {
	for i, r := range refuseReasons {
		if r == reason {
			s.refused[i].Add(1)
			return
		}
	}
}

// Closed returns how many sessions ended for reason (tests and the
// daemon's status read it; /metrics reads Samples).
func (s *Stats) Closed(reason string) int64 {
	for i, r := range closeReasons {
		if r == reason {
			return s.closed[i].Load()
		}
	}
	return 0
}

const (
	helpClosed  = "RELP sessions ended, by reason: client_close (the client's close), eof, shutdown, idle (-idle-timeout), open_timeout (no TLS handshake and open in time), frame_timeout (a frame begun and not finished in time), io_error, or the protocol error that ended it (bad_txnr, bad_command, bad_datalen, bad_trailer, too_long, truncated, txnr_sequence, unknown_command, not_open, already_open, bad_offer)."
	helpRefused = "RELP connections closed at accept, by reason: not_allowed (outside -allow), max_conns, per_host, tls (handshake failed)."
)

// Samples describes every series the RELP listener counts, once.
func (s *Stats) Samples(yield func(metric.Sample)) {
	counter := func(name, help string, v int64) {
		yield(metric.Sample{Name: metric.Prefix + name, Help: help, Kind: metric.Counter, Value: float64(v)})
	}
	gauge := func(name, help string, v int64) {
		yield(metric.Sample{Name: metric.Prefix + name, Help: help, Kind: metric.Gauge, Value: float64(v)})
	}
	counter("relp_messages_received_total", "RELP syslog frames handed on (each is answered once the consumer acknowledges it).", s.received.Load())
	counter("relp_messages_acked_total", "RELP syslog frames answered 200 OK.", s.acked.Load())
	counter("relp_messages_too_long_total", "RELP syslog frames over the message size limit: skipped and answered 200 OK, so the sender's queue moves on.", s.tooLong.Load())
	counter("relp_hints_ignored_total", "RELP frames with TXNR 0 (hints) from clients, ignored.", s.hints.Load())
	counter("relp_sessions_accepted_total", "RELP connections taken into service (past -allow and the connection limits).", s.accepted.Load())
	gauge("relp_sessions_open", "RELP sessions open now.", s.open.Load())
	gauge("relp_messages_unanswered", "RELP syslog frames received and not yet answered (waiting until their login is durable).", s.unanswered.Load())
	counter("relp_window_full_total", "Times a RELP session stopped reading because its window of unanswered frames was full.", s.windowFull.Load())
	for i, r := range closeReasons {
		yield(metric.Sample{Name: metric.Prefix + "relp_sessions_closed_total", Help: helpClosed, Kind: metric.Counter,
			Label: "reason", LabelValue: r, Value: float64(s.closed[i].Load())})
	}
	for i, r := range refuseReasons {
		yield(metric.Sample{Name: metric.Prefix + "relp_connections_refused_total", Help: helpRefused, Kind: metric.Counter,
			Label: "reason", LabelValue: r, Value: float64(s.refused[i].Load())})
	}
}

// logLimited logs at most once per interval and reason, with how many
// lines were suppressed, so a flood of bad input can't flood the log.
func (s *Server) logLimited(level func() *zerolog.Event, reason, peer, msg string) {
	s.warn.Log(level, reason, peer, msg)
}
