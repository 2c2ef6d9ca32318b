package journal

import (
	"sync/atomic"

	"github.com/relaygate/relaygate/internal/metric"
)

// Why an entry was skipped (the label of relaygate_journal_skipped_total).
const (
	reasonMalformed = "malformed"  // not a JSON object, or no cursor
	reasonTooLong   = "too_long"   // a line over 1 MiB or a MESSAGE over 64 KiB
	reasonAmbiguous = "ambiguous"  // MESSAGE, SYSLOG_IDENTIFIER, SYSLOG_PID or _HOSTNAME more than once
	reasonNoMessage = "no_message" // no MESSAGE (or one of 4096 bytes or more, which journalctl prints as null)
	reasonStale     = "stale"      // a login older than the grace period when read
	reasonStuck     = "stuck"      // an entry journalctl exited at again and again without printing it (stuck.go)
)

var reasons = [...]string{reasonMalformed, reasonTooLong, reasonAmbiguous, reasonNoMessage, reasonStale, reasonStuck}

// Stats counts what the reader did; safe for concurrent use.
type Stats struct {
	entries      atomic.Int64
	restarts     atomic.Int64
	running      atomic.Int64
	cursorSaves  atomic.Int64
	cursorErrors atomic.Int64
	skipped      [len(reasons)]atomic.Int64
}

func (s *Stats) skip(reason string) {
	for i, r := range reasons {
		if r == reason {
			s.skipped[i].Add(1)
			return
		}
	}
}

// Samples describes the reader's series (metric.Source).
func (r *Reader) Samples(yield func(metric.Sample)) {
	s := &r.stats
	yield(metric.Sample{Name: metric.Prefix + "journal_entries_total", Kind: metric.Counter, Value: float64(s.entries.Load()),
		Help: "Journal entries read (-journal), each handed to the parsers."})
	for i, reason := range reasons {
		yield(metric.Sample{Name: metric.Prefix + "journal_skipped_total", Kind: metric.Counter,
			Help:  "Journal entries skipped, by reason: malformed, too_long, ambiguous (a field given twice), no_message (none, or one of 4096 bytes or more), stale (a login older than -grace when read), stuck (journalctl exited at it again and again without printing it).",
			Label: "reason", LabelValue: reason, Value: float64(s.skipped[i].Load())})
	}
	yield(metric.Sample{Name: metric.Prefix + "journal_restarts_total", Kind: metric.Counter, Value: float64(s.restarts.Load()),
		Help: "Times journalctl exited and was started again (with back-off)."})
	yield(metric.Sample{Name: metric.Prefix + "journal_running", Kind: metric.Gauge, Value: float64(s.running.Load()),
		Help: "1 while journalctl runs."})
	yield(metric.Sample{Name: metric.Prefix + "journal_cursor_saves_total", Kind: metric.Counter, Value: float64(s.cursorSaves.Load()),
		Help: "Times the cursor of the last durable journal entry was written to <state>.journal-cursor."})
	yield(metric.Sample{Name: metric.Prefix + "journal_cursor_errors_total", Kind: metric.Counter, Value: float64(s.cursorErrors.Load()),
		Help: "Failed writes of the journal cursor file (retried with the next durable entry)."})
}
