package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publish hands an event this relaygate accepted to the outbox, without
// waiting: when the hand-off is full the event is dropped (it granted
// here all the same) and counted. No-op unless the relaygate publishes.
func (f *Fleet) Publish(id string, ev Event) {
	if f == nil || f.in == nil {
		return
	}
	select {
	case f.in <- pending{id, ev}:
	default:
		f.stats.queueDropped.Add(1)
	}
}

// Publishes reports whether Publish does anything.
func (f *Fleet) Publishes() bool { return f != nil && f.in != nil }

// handOff is the room between the pipeline and the outbox: a burst of
// logins (a syslog queue flushed after an outage) waits here while the
// outbox writes the batch before it.
const handOff = 65536

// sendBatch is the most events published before waiting for their
// acknowledgements; ackTimeout how long an acknowledgement may take.
const (
	sendBatch  = 256
	ackTimeout = 5 * time.Second
)

// minAckWait is how long a batch waits for its acknowledgements while
// they come: a PubAck takes milliseconds, but one for an event sent to a
// stream leader that died never comes, and the batch holds the outbox up
// meanwhile, though a new leader may already take it again. A wait that
// expires doubles the next, up to the ackTimeout, so that a cluster that
// is only slow to acknowledge still has the time.
const minAckWait = 2 * time.Second

// nextAckWait is the wait after a batch that waited cur: doubled when
// acknowledgements did not come in time, back to the least when every
// event was acknowledged, unchanged otherwise (refused, not sent).
func nextAckWait(cur, least, most time.Duration, expired, allAcked bool) time.Duration {
	switch {
	case expired:
		return min(2*cur, most)
	case allAcked:
		return least
	}
	return cur
}

// runOutbox owns the outbox: it appends what Publish handed over (one
// fsync for all that arrived meanwhile), hands the sender one batch at a
// time, and records the acknowledgements.
func (f *Fleet) runOutbox() {
	defer f.wg.Done()
	ob := f.outbox
	defer ob.Close()
	var (
		inFlight []*outEntry
		retryAt  time.Time
		backoff  = 100 * time.Millisecond
		timer    = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	ids := make([]string, 0, 4096)
	data := make([][]byte, 0, 4096)
	for {
		if inFlight == nil && ob.Pending() && f.nc.IsConnected() && !f.now().Before(retryAt) {
			inFlight = ob.Take(sendBatch)
			select {
			case f.send <- inFlight:
			case <-f.ctx.Done():
				return
			}
		}
		// Look again within a second in any case (a reconnection the
		// kick missed), sooner when a retry is due.
		wait := time.Second
		if d := retryAt.Sub(f.now()); inFlight == nil && d > 0 && d < wait {
			wait = d
		}
		timer.Reset(wait)
		select {
		case p := <-f.in:
			ids, data = ids[:0], data[:0]
			ids, data = append(ids, p.id), append(data, p.ev.Encode())
		more:
			for len(ids) < cap(ids) {
				select {
				case p := <-f.in:
					ids, data = append(ids, p.id), append(data, p.ev.Encode())
				default:
					break more
				}
			}
			dropped, err := ob.Add(ids, data)
			if dropped > 0 {
				f.stats.outboxDropped.Add(int64(dropped))
				f.warn(nil, fmt.Sprintf("fleet: the outbox is full (-nats-outbox-max %d): logins are granted here but not published", f.cfg.OutboxMax))
			}
			if err != nil {
				f.stats.outboxErrors.Add(1)
				f.warn(err, "fleet: cannot write the outbox; events wait in memory only")
			}
			f.stats.outbox.Store(int64(ob.Len()))
		case ok := <-f.results:
			failed := false
			for i, e := range inFlight {
				ob.Done(e, ok[i])
				failed = failed || !ok[i]
			}
			inFlight = nil
			if failed {
				retryAt = f.now().Add(backoff)
				backoff = min(2*backoff, time.Second)
			} else {
				retryAt, backoff = time.Time{}, 100*time.Millisecond
			}
			if err := ob.Trim(); err != nil {
				f.stats.outboxErrors.Add(1)
				f.warn(err, "fleet: cannot trim the outbox")
			}
			f.stats.outbox.Store(int64(ob.Len()))
		case <-f.kick:
			retryAt, backoff = time.Time{}, 100*time.Millisecond
		case <-timer.C:
		case <-f.ctx.Done():
			// What is still handed over goes into the file, for the next
			// run to publish.
			for {
				select {
				case p := <-f.in:
					if _, err := ob.Add([]string{p.id}, [][]byte{p.ev.Encode()}); err != nil {
						return
					}
				default:
					return
				}
			}
		}
	}
}

// runSender publishes each batch and reports, per event, whether the
// stream acknowledged it.
func (f *Fleet) runSender() {
	defer f.wg.Done()
	for {
		var batch []*outEntry
		select {
		case batch = <-f.send:
		case <-f.ctx.Done():
			return
		}
		ok := f.publish(batch)
		select {
		case f.results <- ok:
		case <-f.ctx.Done():
			return
		}
	}
}

func (f *Fleet) publish(batch []*outEntry) []bool {
	ok := make([]bool, len(batch))
	if !f.streamOK.Load() {
		if _, err := f.stream(f.ctx); err != nil {
			f.stats.publishErrors.Add(int64(len(batch)))
			f.warn(err, "fleet: the stream cannot be found or created; events wait in the outbox")
			return ok
		}
	}
	futures := make([]jetstream.PubAckFuture, len(batch))
	for i, e := range batch {
		m := nats.NewMsg(f.subject)
		m.Data = e.data
		m.Header.Set(jetstream.MsgIDHeader, e.id)
		fut, err := f.js.PublishMsgAsync(m, jetstream.WithExpectStream(f.cfg.Stream))
		if errors.Is(err, nats.ErrMaxPayload) {
			// This message only: the ones after it still go.
			f.warn(err, "fleet: an event is larger than the server takes; it waits in the outbox")
			continue
		}
		if err != nil {
			f.warn(err, "fleet: publish failed; events wait in the outbox")
			break
		}
		futures[i] = fut
	}
	if f.ackWait <= 0 {
		f.ackWait = f.cfg.ackWaitMin
	}
	deadline := time.NewTimer(f.ackWait)
	defer deadline.Stop()
	var lastErr error
	expired := false
	take := func(i int, ack *jetstream.PubAck) {
		ok[i] = true
		if ack.Duplicate {
			f.stats.publishedDup.Add(1)
		} else {
			f.stats.publishedOK.Add(1)
		}
	}
	for i, fut := range futures {
		switch {
		case fut == nil:
			continue
		case expired:
			// The wait is over: take what has come, count the rest as
			// failed (they are sent again; the stream drops a copy it has).
			select {
			case ack := <-fut.Ok():
				take(i, ack)
			case err := <-fut.Err():
				lastErr = err
			default:
			}
			continue
		}
		select {
		case ack := <-fut.Ok():
			take(i, ack)
		case err := <-fut.Err():
			lastErr = err
			expired = errors.Is(err, jetstream.ErrAsyncPublishTimeout)
		case <-deadline.C:
			lastErr, expired = context.DeadlineExceeded, true
		case <-f.ctx.Done():
			return ok
		}
	}
	failed := 0
	for _, o := range ok {
		if !o {
			failed++
		}
	}
	f.ackWait = nextAckWait(f.ackWait, f.cfg.ackWaitMin, f.cfg.ackTimeout, expired, failed == 0)
	if failed > 0 {
		f.stats.publishErrors.Add(int64(failed))
		if lastErr != nil {
			f.warn(lastErr, "fleet: the stream did not acknowledge events; they wait in the outbox and are sent again")
		}
		if errors.Is(lastErr, jetstream.ErrStreamNotFound) || errors.Is(lastErr, nats.ErrNoResponders) {
			f.streamOK.Store(false)
		}
	}
	return ok
}
