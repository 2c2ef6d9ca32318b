package cdbwriter

import "net/netip"

// unpublishedRemovals returns the addresses the map on disk still grants
// that the table no longer holds: grants that expired, were excluded or
// evicted while the map could not be written. A whole-file state rewrite
// leaves no line for them, and a restart carries over every map address
// the state does not account for, so without a tombstone each would be
// granted again for a grace period. When the last publish wrote the
// table's current set of addresses there are none, and the map is not
// read.
func (s *Service) unpublishedRemovals() []netip.Addr {
	if members, _ := s.table.Versions(); !s.lastPublish.IsZero() && members == s.publishedMembers {
		return nil
	}
	f, err := openExisting(s.open, "map", s.cfg.MapPath, "")
	if err != nil || f == nil {
		return nil // nothing readable to carry over from either
	}
	defer f.Close()
	var stale []netip.Addr
	err = eachMapRecord(f, func(key, value []byte) {
		if a, ok := mapKeyAddr(key, value); ok {
			if _, held := s.table.Lookup(a); !held {
				stale = append(stale, a)
			}
		}
	})
	if err != nil {
		// What was read before the damage is still tombstoned; a restart
		// carries over only what it can read either.
		s.log.Warn().Err(err).Int("tombstoned", len(stale)).
			Msg("map unreadable while writing the state file whole; addresses past the damage get no tombstone")
	}
	return stale
}
