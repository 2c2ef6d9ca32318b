package receiver

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// rateLimiter lets one event per key through per interval and counts the rest.
type rateLimiter struct {
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
	dropped  map[string]int64
}

func newRateLimiter(interval time.Duration) *rateLimiter {
	return &rateLimiter{interval: interval, last: make(map[string]time.Time), dropped: make(map[string]int64)}
}

// allow reports whether key may be logged now, and how many were suppressed
// since it last was.
func (l *rateLimiter) allow(key string) (suppressed int64, ok bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, seen := l.last[key]; seen && now.Sub(last) < l.interval {
		l.dropped[key]++
		return 0, false
	}
	l.last[key] = now
	suppressed = l.dropped[key]
	l.dropped[key] = 0
	return suppressed, true
}

// warnf logs a warning at most once per interval and reason, with how many
// were suppressed, so a flood of bad input can't flood the log.
func (r *Receiver) warnf(reason, peer, msg string) {
	r.limited(r.log.Warn, reason, peer, msg)
}

// infof is warnf for routine events.
func (r *Receiver) infof(reason, peer, msg string) {
	r.limited(r.log.Info, reason, peer, msg)
}

func (r *Receiver) limited(level func() *zerolog.Event, reason, peer, msg string) {
	if suppressed, ok := r.warn.allow(reason); ok {
		ev := level().Str("reason", reason)
		if peer != "" {
			ev = ev.Str("peer", peer)
		}
		if suppressed > 0 {
			ev = ev.Int64("suppressed", suppressed)
		}
		ev.Msg(msg)
	}
}
