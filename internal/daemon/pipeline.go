package daemon

import (
	"github.com/relaygate/relaygate/internal/fleet"
	"github.com/relaygate/relaygate/internal/grants"
	"github.com/relaygate/relaygate/parsers"
	"github.com/relaygate/relaygate/receiver"
)

// runPipeline is the pipeline goroutine: it runs every message through the
// pipeline step and applies reloads between two messages, until msgs is
// closed. It is the only goroutine that touches the parser set and the
// correlator.
func (d *Daemon) runPipeline(msgs <-chan receiver.Message, events chan<- grants.Event) {
	journal := d.journalEntries()    // nil without -journal
	relp := d.relpMessages()         // nil without -relp
	var fleetItems <-chan fleet.Item // the fleet's, once its catch-up is over
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				d.drainRELP(events) // RELP stopped before msgs closed (intake.go)
				d.flushJournalMark(events, d.clock.Now())
				d.flushFleetMark(events)
				return
			}
			if ev, ok := d.handle(m); ok {
				d.fleetPublish(ev, &m)
				events <- ev
			}
		case m := <-relp:
			d.handleRELP(m, events)
		case e := <-journal:
			d.handleJournal(e, events)
		case l := <-d.policyLogins:
			ev := policyEvent(l)
			d.fleetPublishPolicy(ev, l)
			events <- ev
		case live := <-d.fleetGo:
			fleetItems = d.fleetGoLive(live, events)
		case it, ok := <-fleetItems:
			if !ok {
				fleetItems = nil
				continue
			}
			d.handleFleet(it, fleetItems, events)
		case r := <-d.reloads:
			d.pipe.SetParsers(r.parsers)
			d.origin.policy = r.origin
			d.known.Store(r.parsers)
			d.journalReload(r.parsers)
			events <- grants.Event{Kind: grants.EventExclude, Exclude: r.exclude, At: d.clock.Now()}
		}
	}
}

// handle runs one message through the pipeline step; it reports a grant
// table event, if any.
func (d *Daemon) handle(m receiver.Message) (grants.Event, bool) {
	ev, ok, _ := d.step(m)
	return ev, ok
}

// step is handle, also returning what the pipeline step made of m.
func (d *Daemon) step(m receiver.Message) (grants.Event, bool, parsers.Result) {
	msg := parsers.Message{Host: m.Host, Program: m.Program, PID: m.PID, Text: m.Text}
	res := d.pipe.StepAdmit(msg, m.Received, func(daemon string) string { return d.origin.admit(&m, daemon, m.Received) })
	switch res.Outcome {
	case parsers.Refused:
		d.log.Debug().Str("program", m.Program).Str("host", m.Host).Err(res.Err).Msg("login not granted")
		return grants.Event{}, false, res
	case parsers.Accepted:
	default:
		return grants.Event{}, false, res
	}
	ev := res.Event
	host := m.Host
	if host == "" {
		host = m.Peer
	}
	out := grants.Event{
		Kind:    grants.EventLogin,
		Grant:   grants.Grant{Addr: ev.Addr, User: ev.User, Daemon: ev.Daemon, Host: host},
		Session: ev.Session,
		At:      m.Received,
	}
	if ev.Kind == parsers.Logout {
		out.Kind = grants.EventLogout
	}
	return out, true, res
}
