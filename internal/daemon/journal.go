package daemon

import (
	"context"
	"time"

	"github.com/relaygate/relaygate/internal/grants"
	"github.com/relaygate/relaygate/internal/metric"
	"github.com/relaygate/relaygate/parsers"
	"github.com/relaygate/relaygate/receiver/journal"
)

// JournalConfig is -journal: follow the local systemd journal, as well as
// (or instead of) the syslog listeners.
type JournalConfig struct {
	On bool
	// Dir is -journal-dir, journalctl's --directory; "" reads the system
	// journal.
	Dir string
	// Journalctl is the program to run ("journalctl" in PATH if ""); tests
	// set a fake.
	Journalctl string
}

// journalCursorSuffix names the cursor file beside the state file: the
// place to resume reading the journal, kept with the grants it produced.
const journalCursorSuffix = ".journal-cursor"

// markEvery is the most journal entries without a grant-table event that
// go by before a mark event acknowledges them while entries keep coming;
// when the reader has nothing queued, a mark goes at once.
const markEvery = 512

// journalIn is the pipeline goroutine's view of the journal: the entries,
// and the mark not yet sent.
type journalIn struct {
	entries chan journal.Entry
	start   chan struct{} // closed once the map and state are this process's
	mark    uint64        // Seq of the newest entry not yet acknowledged
	unsent  int
}

// journalPrograms is every program tag the parser set knows: the journal
// matches to ask journalctl for.
func journalPrograms(set *parsers.Set) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range set.Parsers() {
		for _, prog := range p.Programs() {
			if !seen[prog] {
				seen[prog] = true
				out = append(out, prog)
			}
		}
	}
	return out
}

// newJournal prepares the journal reader, when -journal is on: it finds
// journalctl (an error at start if it is missing) and reads the saved
// cursor.
func (d *Daemon) newJournal(set *parsers.Set) error {
	if !d.cfg.Journal.On {
		return nil
	}
	r, err := journal.New(journal.Config{
		Programs:   journalPrograms(set),
		Directory:  d.cfg.Journal.Dir,
		Journalctl: d.cfg.Journal.Journalctl,
		CursorFile: d.cfg.StatePath + journalCursorSuffix,
		Grace:      d.cfg.Grace,
		HoldFor:    correlatorMaxAge,
		Now:        d.clock.Now,
		Logger:     d.log,
	})
	if err != nil {
		return err
	}
	d.journal = r
	d.jin = &journalIn{entries: make(chan journal.Entry, 4096), start: make(chan struct{})}
	return nil
}

// startJournal runs the reader for the intake; it reads nothing before
// journalGo (the lock is this process's, so the cursor saved by a
// predecessor is final).
func (d *Daemon) startJournal(ctx context.Context, in *intake) {
	if d.journal == nil {
		return
	}
	in.readers.Add(1)
	go func() {
		defer in.readers.Done()
		select {
		case <-d.jin.start:
		case <-ctx.Done():
			return
		}
		d.journal.Run(ctx, d.jin.entries)
	}()
}

// journalGo lets the reader start.
func (d *Daemon) journalGo() {
	if d.jin != nil {
		close(d.jin.start)
	}
}

// journalEntries is the pipeline goroutine's journal channel; nil (never
// ready) without -journal.
func (d *Daemon) journalEntries() <-chan journal.Entry {
	if d.jin == nil {
		return nil
	}
	return d.jin.entries
}

// handleJournal runs one journal entry through the pipeline, like a syslog
// message, and numbers what it sends: the entry's grant-table event
// carries its Seq, and entries that make none are acknowledged by a mark
// (see journal's cursor.go). A login older than the grace period when it
// was read grants nothing; a two-line daemon's address line holds the
// saved cursor back until the correlator would have forgotten it.
func (d *Daemon) handleJournal(e journal.Entry, events chan<- grants.Event) {
	ev, ok, res := d.step(e.Message)
	if res.Outcome == parsers.Held && res.Parsed.Kind == parsers.Connect {
		d.journal.Hold(e.Seq, e.Received)
	}
	if ok && e.Stale && ev.Kind == grants.EventLogin {
		d.journal.SkipStale()
		ok = false
	}
	in := d.jin
	if ok {
		ev.Seq = d.journalSeq(e.Seq)
		d.fleetPublish(ev, &e.Message)
		in.mark, in.unsent = 0, 0
		events <- ev
		return
	}
	in.mark = e.Seq
	in.unsent++
	if in.unsent >= markEvery || len(in.entries) == 0 {
		d.flushJournalMark(events, e.Received)
	}
}

// flushJournalMark sends the mark of the entries not yet acknowledged.
func (d *Daemon) flushJournalMark(events chan<- grants.Event, at time.Time) {
	if d.jin == nil || d.jin.mark == 0 {
		return
	}
	events <- grants.Event{Kind: grants.EventMark, Seq: d.journalSeq(d.jin.mark), At: at}
	d.jin.mark, d.jin.unsent = 0, 0
}

// journalReload gives the reader the program tags of a reloaded parser
// set.
func (d *Daemon) journalReload(set *parsers.Set) {
	if d.journal != nil {
		d.journal.SetPrograms(journalPrograms(set))
	}
}

// journalDurable is cdbwriter's OnDurable: events up to seq are on disk.
func (d *Daemon) journalDurable(seq uint64) {
	if d.journal != nil {
		d.journal.Durable(seq)
	}
}

// closeJournal saves the final cursor; after the service's final sync.
func (d *Daemon) closeJournal() {
	if d.journal != nil {
		d.journal.Close()
	}
}

// watchJournal makes /healthz (and relaygate_healthy) report a stuck
// journal reader; after newMonitor.
func (d *Daemon) watchJournal() {
	if d.journal != nil {
		d.mon.health.watch(d.journal.Health)
	}
}

// journalSource is the reader's counters, nil without -journal.
func (d *Daemon) journalSource() metric.Source {
	if d.journal == nil {
		return nil
	}
	return d.journal
}

// journalDesc is the startup line's journal field.
func (d *Daemon) journalDesc() string {
	if d.journal == nil {
		return "off"
	}
	dir := d.cfg.Journal.Dir
	if dir == "" {
		dir = "system"
	}
	return dir + ", " + d.journal.Resuming() + " (" + d.journal.CursorFile() + ")"
}
