// Package cdbwriter keeps the table of granted client addresses and publishes
// it as the cdb map Postfix reads with check_client_access, plus a state file
// so grants survive a restart.
package cdbwriter

import (
	"maps"
	"net/netip"
	"slices"
	"time"
)

// Grant is one address allowed to relay until Expires, or for as long as
// it has an open session.
type Grant struct {
	Addr    netip.Addr `json:"addr"`
	Expires time.Time  `json:"expires"`
	User    string     `json:"user,omitempty"`
	Daemon  string     `json:"daemon,omitempty"`
	Host    string     `json:"host,omitempty"` // the syslog host that reported the login
	// Sessions maps each open session ("daemon/id") to when it opened.
	// While any is open the grant does not expire; grace runs from the
	// last logout.
	Sessions map[string]time.Time `json:"sessions,omitempty"`
}

// Open reports whether the grant has an open session.
func (g Grant) Open() bool { return len(g.Sessions) > 0 }

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
	grace      time.Duration
	maxSession time.Duration
	exclude    []netip.Prefix
	grants     map[netip.Addr]*Grant
	sessions   map[string]netip.Addr // open session key → its address

	// members counts changes to the set of addresses, which is all the map
	// holds; changes also counts expiry and session moves, which only the
	// state file records. A writer compares them with what it last wrote,
	// so a failed write is retried instead of forgotten.
	members uint64
	changes uint64
}

// DefaultMaxSession closes a session whose logout was never seen.
const DefaultMaxSession = 24 * time.Hour

// maxSessionsPerAddr bounds the open sessions one address can hold, so a
// flood of logins that never log out cannot grow memory without limit.
const maxSessionsPerAddr = 256

// NewTable returns an empty table granting for grace and never granting
// addresses inside exclude. Sessions with no logout are closed by
// themselves after maxSession (DefaultMaxSession if 0).
func NewTable(grace, maxSession time.Duration, exclude []netip.Prefix) *Table {
	if maxSession <= 0 {
		maxSession = DefaultMaxSession
	}
	return &Table{
		grace:      grace,
		maxSession: maxSession,
		exclude:    exclude,
		grants:     make(map[netip.Addr]*Grant),
		sessions:   make(map[string]netip.Addr),
	}
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
// A non-empty session (daemon-unique id) keeps the grant open until its
// Logout. g.Expires and g.Sessions are ignored.
func (t *Table) Login(g Grant, session string, now time.Time) Outcome {
	g.Addr = g.Addr.Unmap()
	if t.Excluded(g.Addr) {
		return Excluded
	}
	expires := now.Add(t.grace)
	cur, had := t.grants[g.Addr]
	if !had {
		cur = &Grant{Addr: g.Addr}
		t.grants[g.Addr] = cur
		t.members++
	}
	if expires.After(cur.Expires) {
		// A restored grant may outlast a new one if grace was shortened.
		cur.Expires = expires
	}
	cur.User, cur.Daemon, cur.Host = g.User, g.Daemon, g.Host
	if session != "" {
		t.openSession(cur, sessionKey(g.Daemon, session), now)
	}
	t.changes++
	if had {
		return Extended
	}
	return Added
}

func sessionKey(daemon, session string) string { return daemon + "/" + session }

func (t *Table) openSession(g *Grant, key string, now time.Time) {
	if other, ok := t.sessions[key]; ok && other != g.Addr {
		// A reused id now belongs to this address.
		t.closeSession(key, now)
	}
	if g.Sessions == nil {
		g.Sessions = make(map[string]time.Time)
	}
	if _, open := g.Sessions[key]; !open && len(g.Sessions) >= maxSessionsPerAddr {
		oldestKey, oldest := "", time.Time{}
		for k, at := range g.Sessions {
			if oldestKey == "" || at.Before(oldest) {
				oldestKey, oldest = k, at
			}
		}
		t.closeSession(oldestKey, now)
	}
	g.Sessions[key] = now
	t.sessions[key] = g.Addr
}

// closeSession ends a session at "at": once an address has no open session,
// its grace runs from its last logout.
func (t *Table) closeSession(key string, at time.Time) {
	a, ok := t.sessions[key]
	if !ok {
		return
	}
	delete(t.sessions, key)
	g := t.grants[a]
	if g == nil {
		return
	}
	delete(g.Sessions, key)
	if len(g.Sessions) == 0 {
		g.Sessions = nil
		if e := at.Add(t.grace); e.After(g.Expires) {
			g.Expires = e
		}
	}
	t.changes++
}

// Logout closes an open session and returns its address. A logout never
// grants: an unknown session changes nothing.
func (t *Table) Logout(daemon, session string, now time.Time) (netip.Addr, bool) {
	if session == "" {
		return netip.Addr{}, false
	}
	key := sessionKey(daemon, session)
	a, ok := t.sessions[key]
	if !ok {
		return netip.Addr{}, false
	}
	t.closeSession(key, now)
	return a, true
}

// Restore adds grants read from a state file, keeping their expiry and open
// sessions. Expired and excluded ones are skipped; the number restored is
// returned.
func (t *Table) Restore(gs []Grant, now time.Time) int {
	n := 0
	for _, g := range gs {
		g.Addr = g.Addr.Unmap()
		if !g.Addr.IsValid() || t.Excluded(g.Addr) || (!g.Open() && !g.Expires.After(now)) {
			continue
		}
		if _, had := t.grants[g.Addr]; had {
			continue
		}
		sessions := g.Sessions
		g.Sessions = nil
		restored := g
		t.grants[g.Addr] = &restored
		for key, at := range sessions {
			if _, taken := t.sessions[key]; taken {
				continue
			}
			if restored.Sessions == nil {
				restored.Sessions = make(map[string]time.Time)
			}
			restored.Sessions[key] = at
			t.sessions[key] = g.Addr
		}
		t.members++
		t.changes++
		n++
	}
	return n
}

// Expire closes sessions older than the session limit, removes every grant
// without an open session whose expiry is not after now, and returns the
// removed grants.
func (t *Table) Expire(now time.Time) []Grant {
	var gone []Grant
	for a, g := range t.grants {
		for key, opened := range g.Sessions {
			if closeAt := opened.Add(t.maxSession); !closeAt.After(now) {
				t.closeSession(key, closeAt)
			}
		}
		if !g.Open() && !g.Expires.After(now) {
			gone = append(gone, *g)
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

// NextExpiry returns when Expire next has work: the earliest expiry of a
// grant without open sessions, or the earliest session limit. False if the
// table is empty.
func (t *Table) NextExpiry() (time.Time, bool) {
	var next time.Time
	earliest := func(at time.Time) {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	for _, g := range t.grants {
		if !g.Open() {
			earliest(g.Expires)
			continue
		}
		for _, opened := range g.Sessions {
			earliest(opened.Add(t.maxSession))
		}
	}
	return next, !next.IsZero()
}

// Grants returns a copy of every grant, sorted by address.
func (t *Table) Grants() []Grant {
	out := make([]Grant, 0, len(t.grants))
	for _, g := range t.grants {
		c := *g
		c.Sessions = maps.Clone(g.Sessions)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Grant) int { return a.Addr.Compare(b.Addr) })
	return out
}

// Versions returns the membership and change counters (see Table).
func (t *Table) Versions() (members, changes uint64) { return t.members, t.changes }
