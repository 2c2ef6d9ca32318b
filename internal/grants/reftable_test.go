package grants

// The grant table as it was before it was laid out for a million grants
// (a map of *Grant, container/list for the eviction order, full scans for
// expiry), kept as the reference the current table is checked against.

import (
	"container/list"
	"maps"
	"net/netip"
	"slices"
	"time"
)

type refGrant struct {
	Addr     netip.Addr
	Expires  time.Time
	User     string
	Daemon   string
	Host     string
	Sessions map[string]time.Time

	lru *list.Element
}

func (g refGrant) Open() bool { return len(g.Sessions) > 0 }

func (g refGrant) grant() Grant {
	return Grant{Addr: g.Addr, Expires: g.Expires, User: g.User, Daemon: g.Daemon, Host: g.Host, Sessions: g.Sessions}
}

// refTable is the set of granted addresses. It does no I/O and reads no clock:
// every method takes the time from its caller, so tests drive it exactly.
// It is not safe for concurrent use; one goroutine (the Service) owns it.
type refTable struct {
	grace      time.Duration
	maxSession time.Duration
	maxEntries int
	exclude    []netip.Prefix
	grants     map[netip.Addr]*refGrant
	sessions   map[string]netip.Addr // open session key → its address
	order      *list.List            // of netip.Addr, least recently logged in first
	evictions  uint64

	// members counts changes to the set of addresses, which is all the map
	// holds; changes also counts expiry and session moves, which only the
	// state file records. A writer compares them with what it last wrote,
	// so a failed write is retried instead of forgotten.
	members uint64
	changes uint64
}

// newRefTable returns an empty table.
func newRefTable(c TableConfig) *refTable {
	if c.MaxSession <= 0 {
		c.MaxSession = DefaultMaxSession
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	return &refTable{
		grace:      c.Grace,
		maxSession: c.MaxSession,
		maxEntries: c.MaxEntries,
		exclude:    c.Exclude,
		grants:     make(map[netip.Addr]*refGrant),
		sessions:   make(map[string]netip.Addr),
		order:      list.New(),
	}
}

// Evictions counts grants evicted because the table was full.
func (t *refTable) Evictions() uint64 { return t.evictions }

// SetExclude replaces the excluded networks and removes the grants now
// inside them, which it returns: an operator who excludes a network expects
// it out of the map at once.
func (t *refTable) SetExclude(exclude []netip.Prefix) []refGrant {
	t.exclude = exclude
	var gone []refGrant
	for a, g := range t.grants {
		if t.Excluded(a) {
			gone = append(gone, t.copyOf(g))
			t.remove(g)
		}
	}
	if len(gone) > 0 {
		t.members++
		t.changes++
		slices.SortFunc(gone, func(a, b refGrant) int { return a.Addr.Compare(b.Addr) })
	}
	return gone
}

// remove deletes g and its sessions from the table.
func (t *refTable) remove(g *refGrant) {
	for key := range g.Sessions {
		delete(t.sessions, key)
	}
	if g.lru != nil {
		t.order.Remove(g.lru)
		g.lru = nil
	}
	delete(t.grants, g.Addr)
}

// insert adds a new grant, evicting the least recently logged-in one if the
// table is full.
func (t *refTable) insert(g *refGrant) {
	for len(t.grants) >= t.maxEntries {
		oldest := t.order.Front()
		if oldest == nil {
			break
		}
		t.remove(t.grants[oldest.Value.(netip.Addr)])
		t.evictions++
	}
	t.grants[g.Addr] = g
	g.lru = t.order.PushBack(g.Addr)
	t.members++
}

func (t *refTable) copyOf(g *refGrant) refGrant {
	c := *g
	c.Sessions = maps.Clone(g.Sessions)
	c.lru = nil
	return c
}

// Grace is how long a login grants relay.
func (t *refTable) Grace() time.Duration { return t.grace }

// Len is the number of granted addresses.
func (t *refTable) Len() int { return len(t.grants) }

// Excluded reports whether a is inside an excluded network.
func (t *refTable) Excluded(a netip.Addr) bool {
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
func (t *refTable) Login(g refGrant, session string, now time.Time) Outcome {
	g.Addr = g.Addr.Unmap()
	if t.Excluded(g.Addr) {
		return Excluded
	}
	expires := now.Add(t.grace)
	cur, had := t.grants[g.Addr]
	if had {
		t.order.MoveToBack(cur.lru)
	} else {
		cur = &refGrant{Addr: g.Addr}
		t.insert(cur)
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

func (t *refTable) openSession(g *refGrant, key string, now time.Time) {
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
func (t *refTable) closeSession(key string, at time.Time) {
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
func (t *refTable) Logout(daemon, session string, now time.Time) (netip.Addr, bool) {
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
func (t *refTable) Restore(gs []refGrant, now time.Time) int {
	// Oldest first, so the eviction order approximates the original one.
	gs = slices.Clone(gs)
	slices.SortStableFunc(gs, func(a, b refGrant) int { return a.Expires.Compare(b.Expires) })
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
		t.insert(&restored)
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
		t.changes++
		n++
	}
	return n
}

// Expire closes sessions older than the session limit, removes every grant
// without an open session whose expiry is not after now, and returns the
// removed grants.
func (t *refTable) Expire(now time.Time) []refGrant {
	var gone []refGrant
	for _, g := range t.grants {
		// The original closed lost sessions in map order, so a grant whose
		// sessions all hit the limit got its grace from a random one of
		// them; the reference closes them oldest first, as Table does, so
		// grace runs from the last.
		keys := slices.SortedFunc(maps.Keys(g.Sessions), func(a, b string) int {
			return g.Sessions[a].Compare(g.Sessions[b])
		})
		for _, key := range keys {
			if closeAt := g.Sessions[key].Add(t.maxSession); !closeAt.After(now) {
				t.closeSession(key, closeAt)
			}
		}
		if !g.Open() && !g.Expires.After(now) {
			gone = append(gone, t.copyOf(g))
			t.remove(g)
		}
	}
	if len(gone) > 0 {
		t.members++
		t.changes++
		slices.SortFunc(gone, func(a, b refGrant) int { return a.Addr.Compare(b.Addr) })
	}
	return gone
}

// NextExpiry returns when Expire next has work: the earliest expiry of a
// grant without open sessions, or the earliest session limit. False if the
// table is empty.
func (t *refTable) NextExpiry() (time.Time, bool) {
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
func (t *refTable) Grants() []refGrant {
	out := make([]refGrant, 0, len(t.grants))
	for _, g := range t.grants {
		out = append(out, t.copyOf(g))
	}
	slices.SortFunc(out, func(a, b refGrant) int { return a.Addr.Compare(b.Addr) })
	return out
}

// Versions returns the membership and change counters (see refTable).
func (t *refTable) Versions() (members, changes uint64) { return t.members, t.changes }
