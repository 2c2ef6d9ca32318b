package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// runFollower reads the stream, from where startPoint says, for as long
// as the relaygate runs: an ordered consumer, which the client library
// makes again after a lost connection or a gap, resuming after the last
// message it delivered. Every message becomes an Item on f.items.
func (f *Fleet) runFollower() {
	defer f.wg.Done()
	defer close(f.items)
	var last position // the last message handed on by this run
	for f.ctx.Err() == nil {
		// While disconnected there is nothing to try: the reconnection
		// wakes the follower (refollow).
		if f.nc.IsConnected() {
			err := f.follow(&last)
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
// reads is still the one it started on: the client library makes its
// consumer again after a deletion by sequence, which on a stream made
// anew waits for sequences that may never come.
var streamCheckEvery = 5 * time.Second

func (f *Fleet) follow(last *position) error {
	st, err := f.stream(f.ctx)
	if err != nil {
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
	occ, desc := f.startPoint(info, last.seq)
	ctx, cancel := context.WithTimeout(f.ctx, 3*time.Second)
	cons, err := f.js.OrderedConsumer(ctx, f.cfg.Stream, occ)
	cancel()
	if err != nil {
		return fmt.Errorf("create a consumer of stream %s: %w", f.cfg.Stream, err)
	}
	f.cursor.setStream(info.Config.Name, info.Created)
	if ci := cons.CachedInfo(); ci != nil {
		f.pending0.Store(ci.NumPending)
		f.stats.lag.Store(int64(ci.NumPending))
	}
	f.target.Store(info.State.LastSeq)
	f.started.Store(&desc)
	f.log.Info().Str("stream", f.cfg.Stream).Str("start", desc).Uint64("pending", f.pending0.Load()).Msg("fleet: following")
	f.readyOnce.Do(func() { close(f.ready) })
	// Missing heartbeats (every second) tell within about 2 s that the
	// server holding the consumer is gone. The byte limit bounds what a
	// stream of huge messages (its size limit raised by someone else)
	// buffers here; it stays above anything the server accepts, since a
	// message larger than it would stall the consumer.
	limit := max(4<<20, 2*int(f.nc.MaxPayload()))
	it, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(512, limit), jetstream.PullExpiry(2*time.Second))
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
func (f *Fleet) startPoint(info *jetstream.StreamInfo, last uint64) (jetstream.OrderedConsumerConfig, string) {
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{f.cfg.Subject + ".>"},
		ReplayPolicy:   jetstream.ReplayInstantPolicy,
		// One attempt: when the consumer must be made again, runFollower
		// retries at its own pace (the library's back-off grows to 10 s).
		MaxResetAttempts: 1,
	}
	bySeq := func(seq uint64) {
		occ.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		occ.OptStartSeq = seq
	}
	from := f.now().Add(-f.cfg.Window())
	c := f.cursor.loaded
	switch {
	case last > 0:
		bySeq(last + 1)
		return occ, fmt.Sprintf("after #%d", last)
	case c.ok && c.stream == info.Config.Name && c.created == info.Created.UnixNano() &&
		c.seq <= info.State.LastSeq && c.written.After(from):
		bySeq(c.seq + 1)
		return occ, fmt.Sprintf("after #%d, the last event made durable (saved %s)", c.seq, c.written.UTC().Format(time.RFC3339))
	}
	occ.DeliverPolicy = jetstream.DeliverByStartTimePolicy
	occ.OptStartTime = &from
	return occ, "from " + from.UTC().Format(time.RFC3339) + " (now - grace - 1m)"
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
