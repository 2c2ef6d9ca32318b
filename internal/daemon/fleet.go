package daemon

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/relaygate/relaygate/internal/fleet"
	"github.com/relaygate/relaygate/internal/grants"
	"github.com/relaygate/relaygate/internal/metric"
	"github.com/relaygate/relaygate/receiver"
	"github.com/relaygate/relaygate/receiver/dovecotpolicy"
	"github.com/relaygate/relaygate/receiver/journal"
)

// The fleet (-nats-url, docs/FLEET.md) in the daemon:
//
//   - publishing: the pipeline goroutine hands every login it accepts (a
//     syslog line, a journal entry, a policy report) to the fleet's
//     outbox, without waiting; the sessions loop refreshes this
//     relaygate's open sessions on the others, and says when they end;
//   - following: New's cdbwriter Start replays the stream's active grants
//     (CatchUp) before the first map; after it, the stream's events reach
//     the pipeline goroutine, which sends them to the grant table as
//     logins, like its own, so exclusions, the table's limits and the
//     state file apply alike; the sequencer (seq.go) tells the fleet
//     which stream sequence is durable, for its cursor.

// fleetIn is the pipeline goroutine's view of the fleet, its own once
// the catch-up has handed it over (d.fleetGo).
type fleetIn struct {
	src    *seqSource
	stream int64  // the creation time of the stream src numbers (fleet.Item.Stream)
	mark   uint64 // stream sequence of the newest item not yet acknowledged
	unsent int
}

// fleetLive hands the follower's items to the pipeline goroutine after
// the catch-up, with the last sequence the catch-up applied.
type fleetLive struct {
	items <-chan fleet.Item
	mark  uint64
	in    *fleetIn
}

// startFleet joins the fleet, when -nats-url is set: the connection is
// made in the background; only what retrying cannot fix is an error.
func (d *Daemon) startFleet() error {
	if !d.cfg.Fleet.On() {
		return nil
	}
	f, err := fleet.Start(d.cfg.Fleet, d.log, d.clock.Now)
	if err != nil {
		return err
	}
	d.fleet = f
	d.mon.fleet = f.Status
	return nil
}

// fleetCatchUp is cdbwriter's CatchUp: the fleet's active grants, applied
// before the first map is published (for at most -nats-catchup).
func (d *Daemon) fleetCatchUp(apply func(grants.Event)) {
	if !d.fleet.Follows() {
		return
	}
	applied := 0
	var stream int64
	res := d.fleet.CatchUp(func(it fleet.Item) {
		stream = it.Stream
		if ev, ok := d.fleet.Accept(it, d.clock.Now()); ok {
			apply(fleetGrant(ev))
			applied++
		}
	})
	ev := d.log.Info()
	msg := "fleet: caught up before the first map"
	if !res.Complete {
		ev = d.log.Warn()
		msg = "fleet: not caught up within -nats-catchup; publishing the map without what is missing, which follows as it arrives"
	}
	ev.Int("events", res.Events).Int("applied", applied).Uint64("last", res.Last).Dur("took", res.Took).Msg(msg)
	d.fleetGo <- fleetLive{items: d.fleet.Items(), mark: res.Last, in: &fleetIn{src: d.seq.source(d.fleet.DurableOf(stream)), stream: stream}}
}

// fleetGrant is the grant-table event of a fleet event: a login at its
// time, without a session (the holder refreshes open sessions).
func fleetGrant(ev fleet.Event) grants.Event {
	return grants.Event{
		Kind:  grants.EventLogin,
		Grant: grants.Grant{Addr: ev.Addr, User: ev.User, Daemon: ev.Daemon, Host: ev.Host},
		At:    ev.At,
	}
}

// fleetGoLive is the pipeline goroutine's part of the end of the
// catch-up: the items to read from now on, and a mark for what the
// catch-up applied, durable with the state write it made (or the next).
func (d *Daemon) fleetGoLive(live fleetLive, events chan<- grants.Event) <-chan fleet.Item {
	d.fin = live.in
	if live.mark != 0 {
		d.fin.mark = live.mark
		d.flushFleetMark(events)
	}
	return live.items
}

// handleFleet sends one item of the stream to the grant table, numbered
// so that its durability reaches the cursor; items that grant nothing
// (this relaygate's own, invalid, stale) are acknowledged by a mark,
// coalesced as the journal's are. On the pipeline goroutine.
func (d *Daemon) handleFleet(it fleet.Item, more <-chan fleet.Item, events chan<- grants.Event) {
	in := d.fin
	if it.Stream != in.stream {
		// The stream was deleted and made again: its sequences start
		// over, so they get a source of their own, whose durability
		// counts for the new stream only.
		d.flushFleetMark(events)
		in.src, in.stream = d.seq.source(d.fleet.DurableOf(it.Stream)), it.Stream
	}
	if ev, ok := d.fleet.Accept(it, d.clock.Now()); ok {
		g := fleetGrant(ev)
		g.Seq = d.seq.number(in.src, it.Seq)
		in.mark, in.unsent = 0, 0
		events <- g
		return
	}
	in.mark = it.Seq
	in.unsent++
	if in.unsent >= markEvery || len(more) == 0 {
		d.flushFleetMark(events)
	}
}

// flushFleetMark sends the mark of the items not yet acknowledged.
func (d *Daemon) flushFleetMark(events chan<- grants.Event) {
	if d.fin == nil || d.fin.mark == 0 {
		return
	}
	events <- grants.Event{Kind: grants.EventMark, Seq: d.seq.number(d.fin.src, d.fin.mark), At: d.clock.Now()}
	d.fin.mark, d.fin.unsent = 0, 0
}

// fleetPublish publishes a login read from a syslog message or a journal
// entry, under an id every relaygate that read the same line derives
// alike. On the pipeline goroutine; never waits.
func (d *Daemon) fleetPublish(ev grants.Event, m *receiver.Message) {
	if !d.fleet.Publishes() || ev.Kind != grants.EventLogin {
		return
	}
	var id string
	if m.Transport == journal.Transport {
		id = fleet.JournalID(m.Host, m.Program, m.PID, m.Text, m.Received)
	} else {
		id = fleet.SyslogID(m.Host, m.Program, m.PID, m.Text, m.Received)
	}
	d.fleet.Publish(id, fleetEvent(ev))
}

// fleetPublishPolicy publishes a login the Dovecot auth policy endpoint
// reported.
func (d *Daemon) fleetPublishPolicy(ev grants.Event, l dovecotpolicy.Login) {
	if !d.fleet.Publishes() {
		return
	}
	d.fleet.Publish(fleet.PolicyID(l.Peer, l.Addr, l.User, l.Received), fleetEvent(ev))
}

func fleetEvent(ev grants.Event) fleet.Event {
	return fleet.Event{Kind: fleet.KindLogin, Addr: ev.Grant.Addr, User: ev.Grant.User, Daemon: ev.Grant.Daemon, Host: ev.Grant.Host, At: ev.At}
}

// fleetSessions is the loop that keeps this relaygate's open sessions
// open on the other relaygates: every fleet.RefreshEvery(-grace) it
// publishes a refresh for each address with an open session, and an end
// (at its last logout) for each address whose sessions all closed since.
type fleetSessions struct {
	stop chan struct{}
	done sync.WaitGroup
}

func (d *Daemon) startFleetSessions() *fleetSessions {
	s := &fleetSessions{stop: make(chan struct{})}
	if !d.fleet.Publishes() {
		return s
	}
	every := fleet.RefreshEvery(d.cfg.Grace)
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		open := map[netip.Addr]struct{}{}
		for {
			select {
			case <-t.C:
			case <-s.stop:
				return
			}
			if !d.refreshSessions(open, every, s.stop) {
				return
			}
		}
	}()
	return s
}

func (s *fleetSessions) close() {
	close(s.stop)
	s.done.Wait()
}

// refreshSessions runs one round of the sessions loop; open is the
// addresses open at the last round, updated. False once the table's
// goroutine is gone.
func (d *Daemon) refreshSessions(open map[netip.Addr]struct{}, every time.Duration, stop <-chan struct{}) bool {
	var refresh, end []fleet.Event
	done := make(chan struct{})
	read := func(t *grants.Table) {
		defer close(done)
		now := d.clock.Now()
		seen := make(map[netip.Addr]struct{}, len(open))
		t.EachOpen(func(r *grants.Record) {
			seen[r.Addr] = struct{}{}
			refresh = append(refresh, fleet.Event{Kind: fleet.KindRefresh, Addr: r.Addr, User: string(r.User), Daemon: r.Daemon, Host: r.Host, At: now})
		})
		for a := range open {
			if _, still := seen[a]; still {
				continue
			}
			delete(open, a)
			if g, ok := t.Lookup(a); ok && !g.Open() {
				// Its grace runs from the last logout: expires − grace.
				end = append(end, fleet.Event{Kind: fleet.KindEnd, Addr: a, User: g.User, Daemon: g.Daemon, Host: g.Host, At: g.Expires.Add(-t.Grace())})
			}
		}
		for a := range seen {
			open[a] = struct{}{}
		}
	}
	select {
	case d.mon.reads <- read:
	case <-d.mon.stopped:
		return false
	case <-stop:
		return false
	}
	<-done
	for _, ev := range refresh {
		d.fleet.Publish(fleet.RefreshID(ev.Addr, ev.At, every), ev)
	}
	for _, ev := range end {
		d.fleet.Publish(fleet.EndID(ev.Addr, ev.At), ev)
	}
	d.fleet.Stats().Sessions(len(refresh), len(end))
	return true
}

// fleetSource is the fleet's counters, nil without -nats-url.
func (d *Daemon) fleetSource() metric.Source {
	if d.fleet == nil {
		return nil
	}
	return d.fleet.Stats()
}

// fleetDesc is the startup line's fleet field.
func (d *Daemon) fleetDesc() string {
	if d.fleet == nil {
		return "off"
	}
	c := d.cfg.Fleet
	return fmt.Sprintf("%s as %s (%s)", c.Stream, c.Name, c.Mode)
}

// closeFleet stops the fleet: after the final sync, so that the cursor
// is the last durable event's.
func (d *Daemon) closeFleet() {
	d.fleet.Close()
}
