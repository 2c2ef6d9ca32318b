package grants

import (
	"runtime"
	"slices"
	"time"
)

// Login grants g.Addr until now+grace; a repeat login extends the grant.
// A non-empty session (daemon-unique id) keeps the grant open until its
// Logout. g.Expires and g.Sessions are ignored.
func (t *Table) Login(g Grant, session string, now time.Time) Outcome {
	defer runtime.KeepAlive(t)
	a := g.Addr.Unmap()
	if t.Excluded(a) {
		return Excluded
	}
	key := a.As16()
	i, had := t.get(key)
	if had {
		t.unlink(i)
		t.pushBack(i)
	} else {
		i = t.insert(key)
	}
	e := t.at(i)
	if expires := now.Add(t.grace).UnixNano(); expires > e.expires {
		// A restored grant may outlast a new one if grace was shortened.
		e.expires = expires
	}
	t.setInfo(e, g.User, g.Daemon, g.Host)
	if session != "" {
		t.openSession(i, sessionKey(g.Daemon, session), now.UnixNano())
	}
	t.schedule(i)
	t.touch(i)
	if had {
		return Extended
	}
	return Added
}

// setInfo records who logged in. The strings are copied (user) or interned
// (daemon, host): the parsers' strings point into the whole message text,
// which a grant must not keep alive for its lifetime.
func (t *Table) setInfo(e *entry, user, daemon, host string) {
	if string(t.users.of(e)) != user {
		t.users.set(t, e, user)
	}
	if e.meta == 0 || t.metas.get(e.meta) != (meta{daemon, host}) {
		old := e.meta
		e.meta = t.metas.acquire(daemon, host)
		t.metas.release(old)
	}
}

// Restore adds grants read from a state file, keeping their expiry and open
// sessions. Expired and excluded ones are skipped, and so is an address
// the table already holds; the number restored is returned.
func (t *Table) Restore(gs []Grant, now time.Time) int {
	defer runtime.KeepAlive(t)
	// Oldest first, so the eviction order approximates the original one.
	// The order is sorted rather than the grants: a Grant is 112 bytes.
	order := make([]int32, len(gs))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int { return gs[a].Expires.Compare(gs[b].Expires) })
	t.reserve(min(len(gs), t.maxEntries))
	n := 0
	for _, k := range order {
		g := &gs[k]
		a := g.Addr.Unmap()
		if !a.IsValid() || t.Excluded(a) || (!g.Open() && !g.Expires.After(now)) {
			continue
		}
		if _, had := t.get(a.As16()); had {
			continue
		}
		i := t.insert(a.As16())
		e := t.at(i)
		e.expires = g.Expires.UnixNano()
		t.setInfo(e, g.User, g.Daemon, g.Host)
		if len(g.Sessions) > 0 {
			t.restoreSessions(i, g.Sessions)
		}
		t.schedule(i)
		t.touch(i)
		n++
	}
	return n
}
