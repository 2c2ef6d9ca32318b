package cdbwriter

import (
	"fmt"
	"time"

	"github.com/relaygate/relaygate/internal/grants"
)

// Clock is the time Run keeps: what time it is, and a channel that
// receives once a duration has passed. SystemClock is the real one; a
// test's clock moves only when the test moves it, so a unit test proves
// when Run syncs, publishes and expires without waiting for any of it.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the system's clock (time.Now and time.After).
type SystemClock struct{}

// Now is time.Now.
func (SystemClock) Now() time.Time { return time.Now() }

// After is time.After.
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// maxBatch is the most events Run applies before it looks at its timer
// again.
const maxBatch = 1024

// Run feeds events to the service and keeps its timers, reading the time
// from clock, until events is closed; then it shuts the service down with
// a final write. Closing the channel rather than cancelling a context lets
// the caller drain every message already received before the last
// publish. Each function received from reads is called with the table on
// Run's goroutine, between events: the table is not safe for concurrent
// use, and this is how another goroutine (an HTTP handler) may look at it.
// reads may be nil.
func (s *Service) Run(events <-chan grants.Event, reads <-chan func(*grants.Table), clock Clock) error {
	var (
		wake  time.Time        // when alarm fires; zero: no wake-up asked for
		alarm <-chan time.Time // nil (never ready) while wake is zero
	)
	arm := func(t time.Time) {
		if t.IsZero() || (!wake.IsZero() && !t.Before(wake)) {
			return
		}
		// An earlier alarm replaces a later one; the later one's channel
		// is dropped unread.
		wake = t
		alarm = clock.After(max(t.Sub(clock.Now()), 0))
	}
	arm(s.tick(clock.Now()))
	for {
		select {
		case ev, ok := <-events:
			if ok {
				ok = s.applyQueued(ev, events)
			}
			if !ok {
				if err := s.shutdown(clock.Now()); err != nil {
					return fmt.Errorf("final write: %w", err)
				}
				return nil
			}
			arm(s.due())
		case <-alarm:
			wake, alarm = time.Time{}, nil
			arm(s.tick(clock.Now()))
		case read := <-reads:
			read(s.table)
		}
	}
}

// applyQueued applies ev and the events already queued behind it, up to
// maxBatch, and reports whether events is still open. Events that queued
// up while a write ran go in together, so the one sync their oldest has
// made due covers them all, instead of a sync for every few events as
// select alternates between a ready timer and a ready channel.
func (s *Service) applyQueued(ev grants.Event, events <-chan grants.Event) bool {
	s.apply(ev)
	for range maxBatch - 1 {
		select {
		case ev, ok := <-events:
			if !ok {
				return false
			}
			s.apply(ev)
		default:
			return true
		}
	}
	return true
}
