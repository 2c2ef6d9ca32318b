package cdbwriter

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/relaygate/relaygate/internal/grants"
)

// The state file doubles as a journal: between two whole rewrites, the
// changes of the last syncInterval (a login, a logout, a repeat login that
// only moved the expiry, a removal) are appended as ordinary state lines and
// synced as one group. LoadState needs nothing new to read them: the last
// line of an address wins, a tombstone removes it, and a final line a crash
// cut short is not damage.

// errStateTorn says an append may have left the state file in a state
// appending cannot build on (a failed sync: which of the written pages
// reached the disk is unknown), so only a whole new file may follow.
var errStateTorn = errors.New("the file may end in an unsynced or partial line")

// appendState appends to the state file at path a line for every grant
// changed and a tombstone for every grant removed since the last save, and
// syncs the data: O(changes) instead of O(grants), so a million grants do
// not mean rewriting 100 MB ten times a second. It returns the lines
// appended.
//
// A failed write (a full disk) is cut back off, so the file ends where the
// last good sync left it and the same changes can be appended again later.
// When that is not certain the error wraps errStateTorn.
func appendState(path string, t *grants.Table) (n int, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return 0, fmt.Errorf("append state %s: %w", path, err)
	}
	defer func() {
		// After a successful data sync the close cannot lose anything.
		_ = f.Close()
	}()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("append state %s: %w", path, err)
	}
	end := fi.Size()
	w := bufio.NewWriterSize(f, 64<<10)
	line := make([]byte, 0, 256)
	t.EachUnsaved(func(r *grants.Record) {
		line = appendRecordLine(line[:0], r)
		w.Write(line) // a write error sticks in w; Flush returns it
		n++
	}, func(a netip.Addr) {
		line = appendTombstone(line[:0], a)
		w.Write(line)
		n++
	})
	if err = w.Flush(); err != nil {
		if terr := f.Truncate(end); terr != nil {
			return 0, fmt.Errorf("append state %s: %w (and cutting it back: %v): %w", path, err, terr, errStateTorn)
		}
		return 0, fmt.Errorf("append state %s: %w", path, err)
	}
	if err = syncData(f); err != nil {
		return 0, fmt.Errorf("append state %s: sync: %w: %w", path, err, errStateTorn)
	}
	return n, nil
}

// noteChange keeps the journal's books after the table may have changed
// at now: the oldest unsaved change sets when the next sync is due, and
// when nothing is unsaved every event applied so far is durable.
func (s *Service) noteChange(now time.Time) {
	if now.After(s.lastNow) {
		s.lastNow = now
	}
	if s.cfg.StatePath == "" {
		return
	}
	if _, changes := s.table.Versions(); changes == s.savedChanges {
		s.markDurable()
	} else if s.unsavedSince.IsZero() {
		s.unsavedSince = now
	}
}

// markDurable records that every event applied so far is in the state
// file, synced.
func (s *Service) markDurable() {
	if s.applied > s.durable.Load() {
		s.durable.Store(s.applied) // only the table's goroutine stores
		if s.cfg.OnDurable != nil {
			s.cfg.OnDurable(s.applied)
		}
	}
}

// Durable returns the greatest Event.Seq whose effect, and that of every
// event Run received before it, is in the state file and synced: a crash
// from now on loses none of them. A caller that must not lose a login
// (an acknowledging transport) answers its sender once Durable reaches the
// login's Seq; Config.OnDurable tells it without polling. Without a state
// file nothing survives a restart, and Durable stays 0. Safe for
// concurrent use.
func (s *Service) Durable() uint64 { return s.durable.Load() }

// stateDue: the state file lacks a change, and it is time to write it:
// syncInterval after the oldest change not yet appended, or stateEvery
// after the last save while only a whole file will do, and no failed write
// is waiting for its retry time.
func (s *Service) stateDue(now time.Time) bool {
	_, changes := s.table.Versions()
	return s.cfg.StatePath != "" && changes != s.savedChanges && !now.Before(s.stateRetry.at) &&
		!now.Before(s.stateDueAt())
}

func (s *Service) stateDueAt() time.Time {
	switch {
	case !s.canAppend():
		// A whole file of a million grants is 100 MB: not ten times a
		// second. The map publish saves the state first in any case.
		return s.lastSave.Add(s.cfg.stateEvery)
	case !s.unsavedSince.IsZero():
		return s.unsavedSince.Add(s.cfg.syncInterval)
	}
	return s.lastNow // changed by a path that did not say when: now
}

// canAppend: the state file can be brought up to date by appending.
func (s *Service) canAppend() bool { return s.stateAppend && s.table.Unsaved() >= 0 }

// writeState saves the table to the state file; a failure schedules a retry
// of its own, so it never holds back the map. It appends the changes since
// the last save when it can, and writes the whole file otherwise.
func (s *Service) writeState(now time.Time) error {
	_, changes := s.table.Versions()
	if s.cfg.StatePath == "" {
		s.savedChanges = changes
		return nil
	}
	var err error
	unsaved := s.table.Unsaved()
	if s.canAppend() {
		var n int
		if n, err = appendState(s.cfg.StatePath, s.table); err == nil {
			s.stateLines += n
		} else if errors.Is(err, errStateTorn) {
			s.stateAppend = false
		}
	} else {
		stale := s.unpublishedRemovals()
		if err = saveTable(s.cfg.StatePath, s.table, stale); err == nil {
			s.stateLines, s.stateAppend = s.table.Len()+len(stale), true
		}
	}
	if err != nil {
		s.stats.StateErrors.Add(1)
		s.stateRetry.failed(now, max(s.cfg.syncInterval, 100*time.Millisecond), s.cfg.maxBackoff)
		// Only what is certain: whether the map has these changes is the
		// map writer's to say.
		ev := s.log.Error().Err(err).Dur("retry_in", s.stateRetry.backoff)
		if unsaved >= 0 {
			ev = ev.Int("unsaved_changes", unsaved)
		}
		if !s.unsavedSince.IsZero() {
			ev = ev.Time("unsaved_since", s.unsavedSince)
		}
		ev.Msg("state write failed; grant changes since the last good state write are in memory only and a crash or restart would lose them")
		return err
	}
	s.table.Saved()
	s.stateRetry.succeeded()
	s.stats.StateSaves.Add(1)
	s.savedChanges = changes
	s.lastSave = now
	s.unsavedSince = time.Time{}
	s.markDurable()
	return nil
}

// defaultStateSlack is how many appended lines beyond twice the table the
// state file may hold before it is rewritten whole.
const defaultStateSlack = 10000

// compactState rewrites the state file whole once it holds more than limit
// lines: during the run about three times the table, right after a publish,
// in the time -flush leaves before the next one, so the rewrite never stands
// between a login and the map; at exit, any appended line. A failure costs
// nothing: the file as appended is complete, so it is only logged, and
// tried again after the next save.
func (s *Service) compactState(limit int) {
	_, changes := s.table.Versions()
	if !s.stateAppend || changes != s.savedChanges || s.stateLines <= limit {
		return
	}
	start := time.Now()
	stale := s.unpublishedRemovals()
	if err := saveTable(s.cfg.StatePath, s.table, stale); err != nil {
		s.log.Warn().Err(err).Int("lines", s.stateLines).Msg("state file rewrite failed; the file as appended is complete, the rewrite is tried again after the next save")
		return
	}
	s.log.Debug().Int("lines", s.stateLines).Int("grants", s.table.Len()).Dur("took", time.Since(start)).Msg("state file rewritten")
	s.stateLines = s.table.Len() + len(stale)
}
