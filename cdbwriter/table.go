// Package cdbwriter keeps the table of granted client addresses and publishes
// it as the cdb map Postfix reads with check_client_access, plus a state file
// so grants survive a restart.
package cdbwriter

import (
	"net/netip"
	"slices"
	"time"
)

// Grant is one address allowed to relay until Expires.
type Grant struct {
	Addr    netip.Addr `json:"addr"`
	Expires time.Time  `json:"expires"`
	User    string     `json:"user,omitempty"`
	Daemon  string     `json:"daemon,omitempty"`
	Host    string     `json:"host,omitempty"` // the syslog host that reported the login
}

// Key is the form Postfix looks a client address up in: IPv4 dotted quad,
// IPv6 RFC 5952 (lower case, "::"-compressed), IPv4-mapped IPv6 unmapped.
func Key(a netip.Addr) string { return a.Unmap().String() }

// Outcome says what a login did to the table.
type Outcome uint8

const (
	// Added: the address was not granted before; the map must change.
	Added Outcome = iota + 1
	// Extended: the address was already granted; only its expiry moved.
	Extended
	// Excluded: the address is in an excluded network and is never granted.
	Excluded
)

func (o Outcome) String() string {
	switch o {
	case Added:
		return "added"
	case Extended:
		return "extended"
	case Excluded:
		return "excluded"
	}
	return "unknown"
}

// Table is the set of granted addresses. It does no I/O and reads no clock:
// every method takes the time from its caller, so tests drive it exactly.
// It is not safe for concurrent use; one goroutine (the Service) owns it.
type Table struct {
	grace   time.Duration
	exclude []netip.Prefix
	grants  map[netip.Addr]Grant

	// members counts changes to the set of addresses, which is all the map
	// holds; changes only counts expiry moves too, which only the state file
	// records. A publisher compares them with what it last wrote, so a failed
	// write is retried instead of forgotten.
	members uint64
	changes uint64
}

// NewTable returns an empty table granting for grace and never granting
// addresses inside exclude.
func NewTable(grace time.Duration, exclude []netip.Prefix) *Table {
	return &Table{grace: grace, exclude: exclude, grants: make(map[netip.Addr]Grant)}
}

// Grace is how long a login grants relay.
func (t *Table) Grace() time.Duration { return t.grace }

// Len is the number of granted addresses.
func (t *Table) Len() int { return len(t.grants) }

// Excluded reports whether a is inside an excluded network.
func (t *Table) Excluded(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t.exclude {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Login grants g.Addr until now+grace; a repeat login extends the grant.
// g.Expires is ignored.
func (t *Table) Login(g Grant, now time.Time) Outcome {
	g.Addr = g.Addr.Unmap()
	if t.Excluded(g.Addr) {
		return Excluded
	}
	g.Expires = now.Add(t.grace)
	old, had := t.grants[g.Addr]
	if had && old.Expires.After(g.Expires) {
		// A restored grant may outlast a new one if grace was shortened.
		g.Expires = old.Expires
	}
	t.grants[g.Addr] = g
	t.changes++
	if had {
		return Extended
	}
	t.members++
	return Added
}

// Restore adds grants read from a state file, keeping their expiry. Expired
// and excluded ones are skipped; the number restored is returned.
func (t *Table) Restore(gs []Grant, now time.Time) int {
	n := 0
	for _, g := range gs {
		g.Addr = g.Addr.Unmap()
		if !g.Addr.IsValid() || !g.Expires.After(now) || t.Excluded(g.Addr) {
			continue
		}
		if old, had := t.grants[g.Addr]; had && !g.Expires.After(old.Expires) {
			continue
		}
		if _, had := t.grants[g.Addr]; !had {
			t.members++
		}
		t.grants[g.Addr] = g
		t.changes++
		n++
	}
	return n
}

// Expire removes every grant whose expiry is not after now and returns them.
func (t *Table) Expire(now time.Time) []Grant {
	var gone []Grant
	for a, g := range t.grants {
		if !g.Expires.After(now) {
			gone = append(gone, g)
			delete(t.grants, a)
		}
	}
	if len(gone) > 0 {
		t.members++
		t.changes++
		slices.SortFunc(gone, func(a, b Grant) int { return a.Addr.Compare(b.Addr) })
	}
	return gone
}

// NextExpiry returns the earliest expiry, or false if the table is empty.
func (t *Table) NextExpiry() (time.Time, bool) {
	var next time.Time
	for _, g := range t.grants {
		if next.IsZero() || g.Expires.Before(next) {
			next = g.Expires
		}
	}
	return next, !next.IsZero()
}

// Grants returns a copy of every grant, sorted by address.
func (t *Table) Grants() []Grant {
	out := make([]Grant, 0, len(t.grants))
	for _, g := range t.grants {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b Grant) int { return a.Addr.Compare(b.Addr) })
	return out
}

// Versions returns the membership and change counters (see Table).
func (t *Table) Versions() (members, changes uint64) { return t.members, t.changes }
