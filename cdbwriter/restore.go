package cdbwriter

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/relaygate/relaygate/internal/grants"
)

// restore loads the state file into the table, then carries over from the
// existing map (nil if none) every address the state does not account for.
func (s *Service) restore(mapFile *os.File, now time.Time) error {
	var (
		n         grants.LoadCounts
		accounted func(netip.Addr) bool
		err       error
	)
	if s.table.Len() == 0 {
		n, accounted, err = s.loadTable(now)
	} else {
		// A caller gave Start a table with grants: Restore keeps them.
		n, accounted, err = s.restoreGrants(now)
	}
	var damage *StateDamage
	if err != nil && !errors.As(err, &damage) {
		return err
	}
	if damage != nil {
		msg := "state file damaged; restoring what could be read, and carrying over from the map what it lost"
		if mapFile == nil {
			msg = "state file damaged; restoring what could be read (there is no map to carry the rest over from)"
		}
		s.log.Warn().Err(err).Int("readable", n.Readable).Msg(msg)
	}
	if n.Ungrantable > 0 {
		s.log.Warn().Int("dropped", n.Ungrantable).Str("state", s.cfg.StatePath).
			Msg("state file grants addresses that can never be a client; not restored")
	}
	if n.Restorable > 0 || n.Restored > 0 {
		s.log.Info().Int("restored", n.Restored).Int("expired_or_excluded", n.Restorable-n.Restored).
			Str("state", s.cfg.StatePath).Msg("restored grants")
	}
	if mapFile == nil {
		return nil
	}
	c, err := s.carryOver(mapFile, accounted, now)
	s.stats.CarriedOver.Add(int64(c.carried))
	s.stats.CarryOverSkipped.Add(int64(c.skipped()))
	if err != nil {
		// Postfix cannot use a map that is not a cdb either: the new one
		// replaces it, with the addresses read before the damage.
		s.log.Error().Err(err).Int("carried_over", c.carried).
			Msg("existing map damaged; carrying over the addresses read before the damage, and replacing it")
	}
	if c.carried > 0 || c.skipped() > 0 {
		s.log.Warn().Int("carried_over", c.carried).Int("not_address", c.notAddress).
			Int("ungrantable", c.ungrantable).Int("excluded", c.excluded).Int("over_max_entries", c.full).
			Str("expires", now.Add(s.table.Grace()).UTC().Format(time.RFC3339)).Str("map", s.cfg.MapPath).
			Msg("carried over the map's addresses the state file does not account for, for one grace period")
	}
	return nil
}

// loadTable reads the state file straight into the empty table.
func (s *Service) loadTable(now time.Time) (grants.LoadCounts, func(netip.Addr) bool, error) {
	return loadFile(s.open, s.cfg.StatePath, stateLimitsFor(s.table.MaxEntries()), s.table, s.cfg.Grantable, now)
}

// loadFile reads the state file at path into the empty table t, a line at
// a time (grants.Loader): a Grant for each of a million addresses, and a
// Go map of them, made the restart slower and its memory peak higher than
// the table itself. It returns what the file held and the addresses it
// accounts for; the error is readState's, and a read error (not damage)
// leaves the table empty.
func loadFile(open openFunc, path string, lim stateLimits, t *grants.Table, grantable func(netip.Addr) bool,
	now time.Time) (grants.LoadCounts, func(netip.Addr) bool, error) {
	l, err := grants.NewLoader(t, grantable, now)
	if err != nil {
		return grants.LoadCounts{}, nil, fmt.Errorf("load state %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		// Room in the index for the lines a file this size holds.
		l.Reserve(int(min(fi.Size()/128, int64(t.MaxEntries()))))
	}
	err = readState(open, path, lim, func(g *grants.Grant) {
		if removedLine(g) {
			l.Remove(g.Addr)
		} else {
			l.Put(g)
		}
	})
	var damage *StateDamage
	if err != nil && !errors.As(err, &damage) {
		l.Abandon()
	}
	n := l.Counts()
	l.Finish()
	return n, l.Accounted, err
}

// restoreGrants restores the state file as Restore does, for a table that
// already holds grants, which Restore keeps; the addresses the file
// accounts for are then those it has a line for.
func (s *Service) restoreGrants(now time.Time) (grants.LoadCounts, func(netip.Addr) bool, error) {
	gs, at, err := loadState(s.open, s.cfg.StatePath, stateLimitsFor(s.table.MaxEntries()))
	accounted := func(a netip.Addr) bool { _, ok := at[a]; return ok }
	c := grants.LoadCounts{Readable: len(gs)}
	var damage *StateDamage
	if err != nil && !errors.As(err, &damage) {
		return c, accounted, err
	}
	gs, c.Ungrantable = grantableOnly(gs, s.cfg.Grantable)
	c.Restorable = len(gs)
	c.Restored = s.table.Restore(gs, now)
	return c, accounted, err
}

// grantableOnly drops the grants of a state file whose address can never
// be granted by today's rules (an older relaygate wrote it, or it was
// edited), so a restart cannot publish a key the parsers would refuse.
func grantableOnly(gs []grants.Grant, grantable func(netip.Addr) bool) ([]grants.Grant, int) {
	kept := gs[:0]
	for _, g := range gs {
		if grantable(g.Addr) {
			kept = append(kept, g)
		}
	}
	dropped := len(gs) - len(kept)
	clear(gs[len(kept):])
	return kept, dropped
}
