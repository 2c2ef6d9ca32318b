package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/relaygate/relaygate/cdbwriter"
)

// published is the service's OnPublish hook: it times every successful
// map write for the publish-duration histogram and keeps /healthz's view
// of whether publishing works. It runs on the goroutine that owns the
// table, at startup before the monitor serves anything.
func (m *monitor) published(now time.Time, took time.Duration, err error) {
	if err != nil {
		m.health.failed(now)
		return
	}
	m.publishSeconds.Observe(took.Seconds())
	m.health.succeeded()
}

// grantSnapshot is the grant table at one moment, for /grants.
type grantSnapshot struct {
	at     time.Time
	grace  time.Duration
	grants []cdbwriter.Grant
}

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
