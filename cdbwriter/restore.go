package cdbwriter

import (
	"errors"
	"net/netip"
	"os"
	"time"
)

// restore loads the state file into the table, then carries over from the
// existing map (nil if none) every address the state does not account for.
// The file is read straight into the table (tableLoad): a Grant for each
// of a million addresses, and a Go map of them, made the restart slower
// and its memory peak higher than the table itself.
func (s *Service) restore(mapFile *os.File, now time.Time) error {
	grantable := s.cfg.Grantable
	var (
		n         loadCounts
		accounted func(netip.Addr) bool
		err       error
	)
	if s.table.Len() == 0 {
		l := newTableLoad(s.table, grantable, now)
		err = l.load(s.open, s.cfg.StatePath, stateLimitsFor(s.table.maxEntries))
		n, accounted = l.counts(), l.accounted
		l.finish()
	} else {
		// A caller gave Start a table with grants: Restore keeps them.
		n, accounted, err = s.restoreGrants(grantable, now)
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
		s.log.Warn().Err(err).Int("readable", n.readable).Msg(msg)
	}
	if n.ungrantable > 0 {
		s.log.Warn().Int("dropped", n.ungrantable).Str("state", s.cfg.StatePath).
			Msg("state file grants addresses that can never be a client; not restored")
	}
	if n.restorable > 0 || n.restored > 0 {
		s.log.Info().Int("restored", n.restored).Int("expired_or_excluded", n.restorable-n.restored).
			Str("state", s.cfg.StatePath).Msg("restored grants")
	}
	if mapFile == nil {
		return nil
	}
	c, err := s.carryOver(mapFile, accounted, now)
	s.stats.CarriedOver.Add(int64(c.Carried))
	s.stats.CarryOverSkipped.Add(int64(c.skipped()))
	if err != nil {
		// Postfix cannot use a map that is not a cdb either: the new one
		// replaces it, with the addresses read before the damage.
		s.log.Error().Err(err).Int("carried_over", c.Carried).
			Msg("existing map damaged; carrying over the addresses read before the damage, and replacing it")
	}
	if c.Carried > 0 || c.skipped() > 0 {
		s.log.Warn().Int("carried_over", c.Carried).Int("not_address", c.NotAddress).
			Int("ungrantable", c.Ungrantable).Int("excluded", c.Excluded).Int("over_max_entries", c.Full).
			Str("expires", now.Add(s.table.Grace()).UTC().Format(time.RFC3339)).Str("map", s.cfg.MapPath).
			Msg("carried over the map's addresses the state file does not account for, for one grace period")
	}
	return nil
}
