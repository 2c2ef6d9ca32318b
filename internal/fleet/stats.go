package fleet

import (
	"sync/atomic"

	"github.com/relaygate/relaygate/internal/metric"
)

// Stats counts what the fleet connection did. Safe for concurrent use.
type Stats struct {
	connected  atomic.Bool
	reconnects atomic.Int64

	publishedOK   atomic.Int64
	publishedDup  atomic.Int64
	publishErrors atomic.Int64
	refreshes     atomic.Int64
	ends          atomic.Int64

	outbox        atomic.Int64 // waiting for the stream's acknowledgement
	outboxDropped atomic.Int64 // the outbox was full
	queueDropped  atomic.Int64 // the hand-off to the outbox was full
	outboxErrors  atomic.Int64 // writes of the outbox file that failed

	applied atomic.Int64 // handed to the grant table
	own     atomic.Int64 // this relaygate's own, skipped
	stale   atomic.Int64 // older than grace: nothing left to grant
	invalid atomic.Int64 // refused by Decode

	appliedSeq atomic.Uint64 // the last stream sequence handed on
	lag        atomic.Int64  // messages in the stream not yet handed on
	cursorErrs atomic.Int64
}

// Samples describes the counters as relaygate_fleet_* series.
func (s *Stats) Samples(yield func(metric.Sample)) {
	p := metric.Prefix + "fleet_"
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	yield(metric.Sample{Name: p + "connected", Kind: metric.Gauge, Value: b2f(s.connected.Load()),
		Help: "1 while connected to a NATS server of the fleet."})
	yield(metric.Sample{Name: p + "reconnects_total", Kind: metric.Counter, Value: float64(s.reconnects.Load()),
		Help: "Reconnections to the fleet's NATS servers after a lost connection."})
	const pub, pubHelp = "fleet_published_total", "Events published to the fleet's stream, by result: ok (stored), duplicate (another relaygate, or an earlier attempt, published the same login: the stream kept one), error (no acknowledgement; the event stays in the outbox and is sent again)."
	yield(metric.Sample{Name: metric.Prefix + pub, Help: pubHelp, Kind: metric.Counter, Label: "result", LabelValue: "ok", Value: float64(s.publishedOK.Load())})
	yield(metric.Sample{Name: metric.Prefix + pub, Help: pubHelp, Kind: metric.Counter, Label: "result", LabelValue: "duplicate", Value: float64(s.publishedDup.Load())})
	yield(metric.Sample{Name: metric.Prefix + pub, Help: pubHelp, Kind: metric.Counter, Label: "result", LabelValue: "error", Value: float64(s.publishErrors.Load())})
	const gen, genHelp = "fleet_session_events_total", "Events this relaygate generated for its open sessions, by kind: refresh (still open), end (the last one closed)."
	yield(metric.Sample{Name: metric.Prefix + gen, Help: genHelp, Kind: metric.Counter, Label: "kind", LabelValue: "refresh", Value: float64(s.refreshes.Load())})
	yield(metric.Sample{Name: metric.Prefix + gen, Help: genHelp, Kind: metric.Counter, Label: "kind", LabelValue: "end", Value: float64(s.ends.Load())})
	yield(metric.Sample{Name: p + "buffered_events", Kind: metric.Gauge, Value: float64(s.outbox.Load()),
		Help: "Events in the outbox (<state>.fleet-outbox) waiting for the stream to acknowledge them."})
	const drop, dropHelp = "fleet_dropped_total", "Events not published because a bound was reached (they still granted here), by reason: outbox_full (-nats-outbox-max), queue_full (the outbox could not keep up)."
	yield(metric.Sample{Name: metric.Prefix + drop, Help: dropHelp, Kind: metric.Counter, Label: "reason", LabelValue: "outbox_full", Value: float64(s.outboxDropped.Load())})
	yield(metric.Sample{Name: metric.Prefix + drop, Help: dropHelp, Kind: metric.Counter, Label: "reason", LabelValue: "queue_full", Value: float64(s.queueDropped.Load())})
	yield(metric.Sample{Name: p + "outbox_errors_total", Kind: metric.Counter, Value: float64(s.outboxErrors.Load()),
		Help: "Writes of the outbox file that failed (the events wait in memory and are still published)."})
	const rcv, rcvHelp = "fleet_received_total", "Events read from the fleet's stream, by result: applied (handed to the grant table, which applies its own exclusions), own (published by this relaygate), stale (older than -grace), invalid (malformed or hostile: skipped)."
	for _, r := range [...]struct {
		v string
		n *atomic.Int64
	}{{"applied", &s.applied}, {"own", &s.own}, {"stale", &s.stale}, {"invalid", &s.invalid}} {
		yield(metric.Sample{Name: metric.Prefix + rcv, Help: rcvHelp, Kind: metric.Counter, Label: "result", LabelValue: r.v, Value: float64(r.n.Load())})
	}
	yield(metric.Sample{Name: p + "lag_events", Kind: metric.Gauge, Value: float64(s.lag.Load()),
		Help: "Events in the fleet's stream not yet applied here (the stream's last sequence minus the last one applied)."})
	yield(metric.Sample{Name: p + "applied_sequence", Kind: metric.Gauge, Value: float64(s.appliedSeq.Load()),
		Help: "Stream sequence of the last event read from the fleet."})
	yield(metric.Sample{Name: p + "cursor_errors_total", Kind: metric.Counter, Value: float64(s.cursorErrs.Load()),
		Help: "Writes of <state>.fleet-cursor that failed (a restart then replays more of the stream; nothing is lost)."})
}

// Sessions counts one round of the holder's sessions loop: the refreshes
// and ends it published.
func (s *Stats) Sessions(refresh, end int) {
	s.refreshes.Add(int64(refresh))
	s.ends.Add(int64(end))
}
