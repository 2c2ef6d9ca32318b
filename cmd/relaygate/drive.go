package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/relaygate/relaygate/cdbwriter"
)

// drive feeds events to the grant table's service until events is closed,
// then writes the map and state a last time. It is cdbwriter.Service.Run's
// loop plus what only the table's owning goroutine can do safely: time every
// map write (for the publish-duration histogram and /healthz) and answer
// /grants with a copy of the table. Run offers neither hook, and the table
// is not safe for concurrent use, so the loop lives here rather than a
// lock around the table.
func (d *daemon) drive(events <-chan cdbwriter.Event) error {
	defer close(d.mon.stopped)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	var wake time.Time
	arm := func(t time.Time) {
		if t.IsZero() || (!wake.IsZero() && !t.Before(wake)) {
			return
		}
		wake = t
		timer.Reset(max(t.Sub(d.now()), 0))
	}
	arm(d.tick())
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				var err error
				d.timeWrite(func() { err = d.svc.Shutdown(d.now()) })
				if err != nil {
					return fmt.Errorf("final write: %w", err)
				}
				return nil
			}
			switch ev.Kind {
			case cdbwriter.EventLogout:
				d.svc.Logout(ev.Grant.Daemon, ev.Grant.User, ev.Session, ev.At)
			case cdbwriter.EventExclude:
				d.svc.SetExclude(ev.Exclude)
			default:
				if d.svc.Login(ev.Grant, ev.Session, ev.At) == cdbwriter.Excluded {
					continue
				}
			}
			arm(d.svc.Due())
		case <-timer.C:
			wake = time.Time{}
			arm(d.tick())
		case reply := <-d.mon.snapshots:
			reply <- grantSnapshot{at: d.now(), grace: d.svc.Table().Grace(), grants: d.svc.Table().Grants()}
		}
	}
}

func (d *daemon) tick() time.Time {
	var next time.Time
	d.timeWrite(func() { next = d.svc.Tick(d.now()) })
	return next
}

// timeWrite runs f, which may publish the map, and records the outcome of
// the publish if there was one. The service counts publishes and their
// errors; a change in those counters across f tells whether f wrote.
func (d *daemon) timeWrite(f func()) {
	ok0, failed0 := d.wstats.Publishes.Load(), d.wstats.PublishErrors.Load()
	start := time.Now()
	f()
	took := time.Since(start)
	ok1, failed1 := d.wstats.Publishes.Load(), d.wstats.PublishErrors.Load()
	switch {
	case failed1 > failed0:
		d.mon.health.failed(d.now())
	case ok1 > ok0:
		d.mon.publishSeconds.Observe(took.Seconds())
		d.mon.health.succeeded()
	}
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
