package daemon

import (
	"context"
	"sync"

	"github.com/relaygate/relaygate/internal/grants"
	"github.com/relaygate/relaygate/receiver"
)

// maxStartupEvents bounds the logins held while the service starts: a
// restart with a million grants at 100,000 logins a second, with room.
// Beyond it the intake waits, as it does once running, and the socket
// buffer takes the rest.
const maxStartupEvents = 1 << 19

// intake is the receiver and the parsers, started before the service so
// that the sockets are read while the state file loads. Until the
// service runs, the events go to a queue that grows as needed (up to
// maxStartupEvents); after, straight to the service.
type intake struct {
	cancel  context.CancelFunc
	events  chan grants.Event
	done    chan struct{}       // closed when the service is about to run
	queued  chan []grants.Event // what the startup queue held then
	readers sync.WaitGroup
}

func (d *Daemon) startIntake(ctx context.Context) *intake {
	ctx, cancel := context.WithCancel(ctx)
	in := &intake{
		cancel: cancel,
		// Room for the logins of a second at 100,000 messages a second: a
		// map publish of a million grants takes about half that, and the
		// receiver must not stop reading while it runs (UDP would drop).
		events: make(chan grants.Event, 16384),
		done:   make(chan struct{}),
		queued: make(chan []grants.Event, 1),
	}
	msgs := make(chan receiver.Message, 4096)
	relpDone := d.startRELP(ctx, in)
	in.readers.Add(2)
	go func() {
		defer in.readers.Done()
		defer close(msgs)
		_ = d.recv.Serve(ctx, msgs)
		// RELP's sessions drain (wait for their acknowledgements) before
		// the pipeline may stop: msgs closing stops it.
		<-relpDone
	}()
	go func() {
		defer in.readers.Done()
		defer close(in.events)
		d.runPipeline(msgs, in.events)
	}()
	d.startJournal(ctx, in)
	go in.hold()
	return in
}

// hold queues the events of the startup until done.
func (in *intake) hold() {
	var q []grants.Event
	events := in.events
	for {
		if len(q) >= maxStartupEvents {
			events = nil
		}
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			q = append(q, ev)
		case <-in.done:
			in.queued <- q
			return
		}
	}
}

// running ends the startup queue: it returns the events queued while the
// service started, to be applied first, and the live stream, which is
// closed when the receiver and parsers stop. The caller applies the queue
// itself rather than through a goroutine that would stand between every
// later event and the service for the life of the process.
func (in *intake) running() ([]grants.Event, <-chan grants.Event) {
	close(in.done)
	return <-in.queued, in.events
}

// abort stops the intake of a daemon that failed to start.
func (in *intake) abort() {
	in.cancel()
	close(in.done)
	<-in.queued
	for range in.events {
	}
	in.readers.Wait()
}

// wait returns once the receiver and parsers have stopped.
func (in *intake) wait() {
	in.readers.Wait()
	in.cancel()
}
