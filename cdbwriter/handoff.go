package cdbwriter

import (
	"net/netip"
	"time"
)

// handOffState is what the Service remembers of Config.OnSet's calls.
type handOffState struct {
	done    bool      // OnSet was called at least once
	members uint64    // the table's members version it was last given
	at      time.Time // when
}

// handOff gives Config.OnSet the granted addresses if the set changed
// since it last had them and -flush has passed since (force: at start and
// shutdown, whatever -flush says). It does not wait for the map: a map
// that cannot be written holds back no other output. As before a map
// publish, the state goes first, so no output shows a grant a kill -9
// would lose.
func (s *Service) handOff(now time.Time, force bool) {
	if s.cfg.OnSet == nil {
		return
	}
	h := &s.handed
	members, changes := s.table.Versions()
	if h.done && members == h.members {
		return
	}
	if h.done && !force && now.Before(h.at.Add(s.cfg.Flush)) {
		return
	}
	if changes != s.savedChanges && s.cfg.StatePath != "" {
		s.writeState(now)
	}
	addrs := make([]netip.Addr, 0, s.table.Len())
	s.table.EachAddr(func(a netip.Addr) { addrs = append(addrs, a.Unmap()) })
	s.cfg.OnSet(addrs)
	*h = handOffState{done: true, members: members, at: now}
}

// handOffDue is when handOff next has work; zero if none.
func (s *Service) handOffDue() time.Time {
	if s.cfg.OnSet == nil {
		return time.Time{}
	}
	if members, _ := s.table.Versions(); s.handed.done && members == s.handed.members {
		return time.Time{}
	}
	return s.handed.at.Add(s.cfg.Flush)
}
