// Package lograte keeps a flood of bad input from flooding the log: one
// line per reason and interval, and the next one says how many were
// suppressed meanwhile. The listeners (syslog and RELP) share it.
package lograte

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Limiter lets one line per reason through per interval and counts the
// rest. Safe for concurrent use.
type Limiter struct {
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
	dropped  map[string]int64
}

// New returns a Limiter of one line per reason and interval.
func New(interval time.Duration) *Limiter {
	return &Limiter{interval: interval, last: make(map[string]time.Time), dropped: make(map[string]int64)}
}

// allow reports whether reason may be logged at now, and how many lines
// were suppressed since it last was.
func (l *Limiter) allow(reason string, now time.Time) (suppressed int64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, seen := l.last[reason]; seen && now.Sub(last) < l.interval {
		l.dropped[reason]++
		return 0, false
	}
	l.last[reason] = now
	suppressed = l.dropped[reason]
	l.dropped[reason] = 0
	return suppressed, true
}

// Log writes msg at level with the reason and, if not empty, the peer,
// unless a line of the same reason went out within the interval.
func (l *Limiter) Log(level func() *zerolog.Event, reason, peer, msg string) {
	suppressed, ok := l.allow(reason, time.Now())
	if !ok {
		return
	}
	ev := level().Str("reason", reason)
	if peer != "" {
		ev = ev.Str("peer", peer)
	}
	if suppressed > 0 {
		ev = ev.Int64("suppressed", suppressed)
	}
	ev.Msg(msg)
}
