package receiver

import (
	"errors"
	"io"
	"sync"
	"time"
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

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
