package daemon

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// publishHealth is what /healthz reports: healthy unless the latest map
// publish failed, or a source watched says it is stuck. A failed publish
// keeps the previous map in place, so Postfix goes on working, but new
// logins no longer reach it.
type publishHealth struct {
	mu       sync.Mutex
	failing  bool
	since    time.Time // first failure of the current run of failures
	failures int       // failures in a row
	// watched are sources' own health ("" while healthy): the journal
	// reader's, which says when journalctl is stuck (no login is read).
	watched []func() string
}

// watch makes status report check too.
func (h *publishHealth) watch(check func() string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.watched = append(h.watched, check)
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
	var why []string
	if h.failing {
		why = append(why, fmt.Sprintf("map publish failing since %s (%d attempts in a row); the previous map stays in place and new grants do not reach Postfix: see the log for \"write failed\"",
			h.since.UTC().Format(time.RFC3339), h.failures))
	}
	watched := h.watched
	h.mu.Unlock()
	for _, check := range watched {
		if s := check(); s != "" {
			why = append(why, s)
		}
	}
	return strings.Join(why, "; ")
}
