package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// runFollower reads the stream, from where startPoint says, for as long
// as the relaygate runs: an ephemeral consumer, made again after a lost
// connection, a lost server or a gap, resuming after the last message
// handed on. Every message becomes an Item on f.items.
func (f *Fleet) runFollower() {
	defer f.wg.Done()
	defer close(f.items)
	var last position // the last message handed on by this run
	wait := newAPIWait()
	for f.ctx.Err() == nil {
		// While disconnected there is nothing to try: the reconnection
		// wakes the follower (refollow).
		if f.nc.IsConnected() {
			err := f.follow(&last, &wait)
			if f.ctx.Err() != nil {
				return
			}
			if err != nil && f.nc.IsConnected() {
				f.warn(err, "fleet: cannot follow the stream; trying again (grants keep working here)")
			}
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-f.refollow:
		case <-f.ctx.Done():
			return
		}
	}
}

// position is where a run of the follower is in the stream: the last
// sequence it handed on, and the stream's creation time, which tells a
// stream that was deleted and made again (its sequences start at 1 anew).
type position struct {
	seq     uint64
	created int64
}

// streamCheckEvery is how often a follower asks whether the stream it
// reads is still the one it started on: a consumer that outlived the
// news of a deletion (a lost server, a lost connection) reads by
// sequence, which on a stream made anew waits for sequences that may
// never come.
var streamCheckEvery = 5 * time.Second

func (f *Fleet) follow(last *position, wait *apiWait) error {
	ctx, cancel := context.WithTimeout(f.ctx, wait.d)
	st, err := f.stream(ctx)
	cancel()
	if wait.after(err) != nil {
		return err
	}
	info := st.CachedInfo()
	created := info.Created.UnixNano()
	if last.seq > 0 && last.created != created {
		// Resuming after #seq of another stream would skip the new
		// one's events up to seq: replay its window instead.
		f.log.Warn().Str("stream", f.cfg.Stream).Uint64("old_last", last.seq).
			Msg("fleet: the stream was deleted and made again; reading the new one from the catch-up window")
		last.seq = 0
	}
	last.created = created
	cc, desc := f.startPoint(info, last.seq)
	ctx, cancel = context.WithTimeout(f.ctx, wait.d)
	cons, err := f.js.CreateConsumer(ctx, f.cfg.Stream, cc)
	cancel()
	if wait.after(err) != nil {
		return fmt.Errorf("create a consumer of stream %s: %w", f.cfg.Stream, err)
	}
	ci := cons.CachedInfo()
	if ci == nil {
		return fmt.Errorf("create a consumer of stream %s: no consumer info in the answer", f.cfg.Stream)
	}
	name := ci.Name
	defer f.dropConsumer(name)
	f.cursor.setStream(info.Config.Name, info.Created)
	f.stats.lag.Store(int64(ci.NumPending))
	f.started.Store(&desc)
	f.log.Info().Str("stream", f.cfg.Stream).Str("start", desc).Uint64("pending", ci.NumPending).Msg("fleet: following")
	// What the catch-up waits for is the first consumer's: one made again
	// before the catch-up read what the first one handed on has nothing
	// pending, though those events still wait in f.items.
	f.readyOnce.Do(func() {
		f.pending0.Store(ci.NumPending)
		f.target.Store(info.State.LastSeq)
		close(f.ready)
	})
	// Missing heartbeats (every second) tell within about 2 s that the
	// server holding the consumer is gone: Next then fails, and
	// runFollower makes a consumer again after the last message handed
	// on. The byte limit bounds what a stream of huge messages (its size
	// limit raised by someone else) buffers here; it stays above anything
	// the server accepts, since a message larger than it would stall the
	// consumer.
	limit := max(4<<20, 2*int(f.nc.MaxPayload()))
	it, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(512, limit), jetstream.PullExpiry(2*time.Second),
		jetstream.WithMessagesErrOnMissingHeartbeat(true))
	if err != nil {
		return err
	}
	defer it.Stop()
	stop := context.AfterFunc(f.ctx, it.Stop)
	defer stop()
	// After a reconnection the consumer is made again from here, at once.
	select {
	case <-f.refollow:
	default:
	}
	var again atomic.Bool
	unwatch := make(chan struct{})
	defer close(unwatch)
	go func() {
		check := time.NewTicker(streamCheckEvery)
		defer check.Stop()
		for {
			select {
			case <-f.refollow:
			case <-check.C:
				if !f.streamChanged(st, created) {
					continue
				}
			case <-unwatch:
				return
			}
			again.Store(true)
			it.Stop()
			return
		}
	}()
	var delivered uint64 // the consumer's sequence of the last message
	for {
		m, err := it.Next()
		if err != nil {
			if again.Load() {
				return nil // reconnected: make the consumer again
			}
			return err
		}
		md, err := m.Metadata()
		if err != nil {
			continue // not a stream message: nothing to apply
		}
		if md.Sequence.Consumer != delivered+1 {
			// A message was lost between the server and here (the
			// consumer does not redeliver): read again after the last
			// one handed on.
			return fmt.Errorf("consumer %s delivered #%d after #%d: %w", name, md.Sequence.Consumer, delivered, errGap)
		}
		delivered = md.Sequence.Consumer
		item := Item{Seq: md.Sequence.Stream, Stream: created, Stored: md.Timestamp, Pending: md.NumPending}
		if m.Subject() == f.subject {
			item.Own = true
		} else {
			item.Event, item.Err = Decode(m.Data())
		}
		last.seq = item.Seq
		select {
		case f.items <- item:
		case <-f.ctx.Done():
			return nil
		}
		f.stats.lag.Store(int64(md.NumPending) + int64(len(f.items)))
	}
}

var errGap = errors.New("a gap in the deliveries")

// dropConsumer deletes a consumer the follower no longer reads, in the
// background: the server would keep it for InactiveThreshold, and the
// request must not hold up the next consumer (its server may be gone).
func (f *Fleet) dropConsumer(name string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = f.js.DeleteConsumer(ctx, f.cfg.Stream, name)
	}()
}

// apiWait is how long the follower waits for an answer of the JetStream
// API (the stream's info, a new consumer). While a stream elects a new
// leader (nats-server takes seconds), its requests go unanswered rather
// than refused: a short wait, tried again at once, finds the new leader
// soon after it exists instead of up to a long timeout later. A server
// that is only slow must still be waited for: after expiredRun waits in a
// row expired (longer than an election), each further run doubles the
// wait, up to maxAPIWait.
type apiWait struct {
	d       time.Duration
	expired int // waits expired in a row
}

const (
	minAPIWait = time.Second
	maxAPIWait = 5 * time.Second
	expiredRun = 8
)

func newAPIWait() apiWait { return apiWait{d: minAPIWait} }

// after takes the result of a request made with the wait d, and returns it.
func (w *apiWait) after(err error) error {
	switch {
	case err == nil:
		w.d, w.expired = minAPIWait, 0
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		w.expired++
		if w.expired%expiredRun == 0 {
			w.d = min(2*w.d, maxAPIWait)
		}
	}
	return err
}

// streamChanged reports whether the stream st is gone or another one
// (deleted and made again) than the one created then; an error that
// says neither (a server that does not answer now) is not a change.
func (f *Fleet) streamChanged(st jetstream.Stream, created int64) bool {
	ctx, cancel := context.WithTimeout(f.ctx, 3*time.Second)
	defer cancel()
	info, err := st.Info(ctx)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return true
	case err != nil:
		return false
	}
	return info.Created.UnixNano() != created
}

// startPoint is where the consumer starts:
//   - after the last message this run handed on, when following again;
//   - after the cursor the last run saved, if it is of this stream and
//     was saved within the catch-up window (a restart);
//   - otherwise at now − Window: every event that can still grant.
func (f *Fleet) startPoint(info *jetstream.StreamInfo, last uint64) (jetstream.ConsumerConfig, string) {
	// An ephemeral consumer, as the client library's ordered consumer
	// makes, but made again by runFollower: the library's own remaking
	// waits up to 10 s for a server that may be electing a leader.
	cc := jetstream.ConsumerConfig{
		FilterSubject:     f.cfg.Subject + ".>",
		AckPolicy:         jetstream.AckNonePolicy,
		ReplayPolicy:      jetstream.ReplayInstantPolicy,
		InactiveThreshold: 5 * time.Minute,
		Replicas:          1,
		MemoryStorage:     true,
	}
	bySeq := func(seq uint64) {
		cc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cc.OptStartSeq = seq
	}
	from := f.now().Add(-f.cfg.Window())
	c := f.cursor.loaded
	switch {
	case last > 0:
		bySeq(last + 1)
		return cc, fmt.Sprintf("after #%d", last)
	case c.ok && c.stream == info.Config.Name && c.created == info.Created.UnixNano() &&
		c.seq <= info.State.LastSeq && c.written.After(from):
		bySeq(c.seq + 1)
		return cc, fmt.Sprintf("after #%d, the last event made durable (saved %s)", c.seq, c.written.UTC().Format(time.RFC3339))
	}
	cc.DeliverPolicy = jetstream.DeliverByStartTimePolicy
	cc.OptStartTime = &from
	return cc, "from " + from.UTC().Format(time.RFC3339) + " (now - grace - 1m)"
}

// Items is the follower's output after the catch-up: the daemon's
// pipeline goroutine reads it. Nil unless the relaygate follows; closed
// when the fleet stops.
func (f *Fleet) Items() <-chan Item {
	if f == nil {
		return nil
	}
	return f.items
}

// Follows reports whether the relaygate follows the fleet.
func (f *Fleet) Follows() bool { return f != nil && f.items != nil }

// CatchUpResult says how a start's catch-up went.
type CatchUpResult struct {
	Events   int    // items handed to apply
	Last     uint64 // the last one's sequence
	Complete bool   // everything the stream held when the follower started
	Took     time.Duration
}

// CatchUp hands apply, in order, every message the stream held when the
// follower's consumer was made: the fleet's active grants, which a start
// must have before it publishes its first map. It waits at most
// Config.CatchUp in all, for a connection and for the messages; what it
// did not read then comes through Items.
func (f *Fleet) CatchUp(apply func(Item)) (res CatchUpResult) {
	start := time.Now()
	defer func() { res.Took = time.Since(start) }()
	if !f.Follows() {
		res.Complete = true
		return res
	}
	deadline := time.NewTimer(f.cfg.CatchUp)
	defer deadline.Stop()
	select {
	case <-f.ready:
	case <-deadline.C:
		return res
	}
	if f.pending0.Load() == 0 {
		res.Complete = true
		return res
	}
	target := f.target.Load()
	for {
		select {
		case it, ok := <-f.items:
			if !ok {
				return res
			}
			apply(it)
			res.Events++
			res.Last = it.Seq
			if it.Pending == 0 || it.Seq >= target {
				res.Complete = true
				return res
			}
		case <-deadline.C:
			return res
		}
	}
}

// MaxSkew is how far ahead of this host's clock an event's time may be:
// the clocks' tolerated difference (hosts keep NTP time).
const MaxSkew = time.Minute

// Accept decides what a message asks of the grant table at now, and
// counts it: an event to apply as a login (at its own time, never later
// than now), or false for this relaygate's own events, for what is not an
// event (malformed or hostile: counted, logged, never applied), and for
// events older than grace, which grant nothing any more.
func (f *Fleet) Accept(it Item, now time.Time) (Event, bool) {
	f.stats.appliedSeq.Store(it.Seq)
	f.stats.lag.Store(int64(it.Pending) + int64(len(f.items)))
	switch {
	case it.Own:
		f.stats.own.Add(1)
		return Event{}, false
	case it.Err != nil:
		f.stats.invalid.Add(1)
		f.warn(fmt.Errorf("stream sequence %d: %w", it.Seq, it.Err), "fleet: skipped a message that is not a valid event")
		return Event{}, false
	}
	ev := it.Event
	if ev.At.After(now.Add(MaxSkew)) {
		// Taken as now, it would grant grace from now each time it is
		// read again (a replay, or a copy of it put back into the stream,
		// which a follower's pull requests can do): never more than the
		// clocks' tolerated difference ahead.
		f.stats.invalid.Add(1)
		f.warn(fmt.Errorf("stream sequence %d: %s: %w", it.Seq, ev, errTime), "fleet: skipped an event dated more than a minute ahead of this host's clock (check NTP)")
		return Event{}, false
	}
	if ev.At.After(now) {
		ev.At = now
	}
	if !ev.At.Add(f.cfg.Grace).After(now) {
		f.stats.stale.Add(1)
		return Event{}, false
	}
	f.stats.applied.Add(1)
	return ev, true
}
