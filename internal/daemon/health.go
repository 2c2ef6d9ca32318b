package daemon

import (
	"fmt"
	"sync"
	"time"
)

// publishHealth is what /healthz reports: healthy unless the latest map
// publish failed. A failed publish keeps the previous map in place, so
// Postfix goes on working, but new logins no longer reach it.
type publishHealth struct {
	mu       sync.Mutex
	failing  bool
	since    time.Time // first failure of the current run of failures
	failures int       // failures in a row
}

func (h *publishHealth) failed(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.failing {
		h.failing, h.since = true, now
	}
	h.failures++
}

func (h *publishHealth) succeeded() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failing, h.since, h.failures = false, time.Time{}, 0
}

// status returns "" when healthy, else why not.
func (h *publishHealth) status() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.failing {
		return ""
	}
	return fmt.Sprintf("map publish failing since %s (%d attempts in a row); the previous map stays in place and new grants do not reach Postfix: see the log for \"write failed\"",
		h.since.UTC().Format(time.RFC3339), h.failures)
}
