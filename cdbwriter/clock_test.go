package cdbwriter

import (
	"sync"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/grants"
)

// fakeClock is a Clock that moves only when a test moves it. Run waits on
// the channel of its latest After only, so that is the one alarm kept.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	at    time.Time      // when the latest After fires; zero once it has
	alarm chan time.Time // its channel, unbuffered: firing waits for Run to take it
}

func newFakeClock(now time.Time) *fakeClock { return &fakeClock{now: now} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at, c.alarm = c.now.Add(max(d, 0)), make(chan time.Time)
	return c.alarm
}

// runner drives Service.Run on a goroutine of its own with a fake clock,
// and tells when Run is idle, so a test sees what Run did at each moment
// without sleeping.
type runner struct {
	t      *testing.T
	clock  *fakeClock
	events chan grants.Event
	reads  chan func(*grants.Table)
	done   chan error
}

// startRun runs svc (started at the clock's time) until stop.
func startRun(t *testing.T, svc *Service, clock *fakeClock) *runner {
	t.Helper()
	r := &runner{t: t, clock: clock, events: make(chan grants.Event), reads: make(chan func(*grants.Table)), done: make(chan error, 1)}
	go func() { r.done <- svc.Run(r.events, r.reads, clock) }()
	t.Cleanup(func() {
		if r.events != nil {
			close(r.events)
			<-r.done
		}
	})
	r.idle()
	return r
}

// idle returns once Run waits for work with everything before done: it
// takes a read only then.
func (r *runner) idle() {
	ran := make(chan struct{})
	r.reads <- func(*grants.Table) { close(ran) }
	<-ran
}

// send hands Run ev, received now, and returns once Run has applied it.
func (r *runner) send(ev grants.Event) {
	ev.At = r.clock.Now()
	r.events <- ev
	r.idle()
}

// wake is when Run asked to be woken; zero if it did not.
func (r *runner) wake() time.Time {
	r.idle()
	r.clock.mu.Lock()
	defer r.clock.mu.Unlock()
	return r.clock.at
}

// fire moves the clock to Run's wake-up, and returns it once Run has done
// what it woke for.
func (r *runner) fire() time.Time {
	r.t.Helper()
	at := r.wake()
	if at.IsZero() {
		r.t.Fatal("Run asked for no wake-up")
	}
	r.clock.mu.Lock()
	r.clock.now, r.clock.at = at, time.Time{}
	alarm := r.clock.alarm
	r.clock.mu.Unlock()
	alarm <- at
	r.idle()
	return at
}

// advance moves the clock to to, before Run's wake-up: nothing fires.
func (r *runner) advance(to time.Time) {
	r.t.Helper()
	if w := r.wake(); !w.IsZero() && !to.Before(w) {
		r.t.Fatalf("advancing to %v would pass Run's wake-up at %v", to, w)
	}
	r.clock.mu.Lock()
	r.clock.now = to
	r.clock.mu.Unlock()
}

// stop closes the events and returns Run's error.
func (r *runner) stop() error {
	close(r.events)
	r.events = nil
	return <-r.done
}
