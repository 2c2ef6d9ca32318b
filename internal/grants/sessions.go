package grants

import (
	"maps"
	"net/netip"
	"runtime"
	"slices"
	"time"
)

// session is one open session of a grant, kept in Table.open: most grants
// have none, so the slots have no room for them.
type session struct {
	key    string
	opened int64 // unix nanoseconds
}

// maxSessionsPerAddr bounds the open sessions one address can hold, so a
// flood of logins that never log out cannot grow memory without limit.
const maxSessionsPerAddr = 256

// sessionKey names a session across daemons: ids are only unique per
// daemon, so a Courier logout cannot close a Dovecot session.
func sessionKey(daemon, session string) string { return daemon + "/" + session }

// Logout closes an open session and returns its address. A logout never
// grants: an unknown session changes nothing.
func (t *Table) Logout(daemon, session string, now time.Time) (netip.Addr, bool) {
	defer runtime.KeepAlive(t)
	if session == "" {
		return netip.Addr{}, false
	}
	key := sessionKey(daemon, session)
	i, ok := t.sessions[key]
	if !ok {
		return netip.Addr{}, false
	}
	a := addrOf(t.at(i))
	t.closeSession(key, now.UnixNano())
	return a, true
}

func (t *Table) openSession(i int32, key string, now int64) {
	if other, ok := t.sessions[key]; ok && other != i {
		// A reused id now belongs to this address.
		t.closeSession(key, now)
	}
	ss := t.open[i]
	for j := range ss {
		if ss[j].key == key {
			ss[j].opened = now
			return
		}
	}
	if len(ss) >= maxSessionsPerAddr {
		oldest := 0
		for j := range ss {
			if ss[j].opened < ss[oldest].opened {
				oldest = j
			}
		}
		t.closeSession(ss[oldest].key, now)
		ss = t.open[i]
	}
	t.open[i] = append(ss, session{key: key, opened: now})
	t.at(i).nsess = uint16(len(ss) + 1)
	t.sessions[key] = i
}

// closeSession ends a session at "at": once an address has no open session,
// its grace runs from its last logout.
func (t *Table) closeSession(key string, at int64) {
	i, ok := t.sessions[key]
	if !ok {
		return
	}
	delete(t.sessions, key)
	ss := t.open[i]
	for j := range ss {
		if ss[j].key == key {
			ss = slices.Delete(ss, j, j+1)
			break
		}
	}
	e := t.at(i)
	e.nsess = uint16(len(ss))
	if len(ss) == 0 {
		delete(t.open, i)
		if end := at + int64(t.grace); end > e.expires {
			e.expires = end
		}
	} else {
		t.open[i] = ss
	}
	t.schedule(i)
	t.touch(i)
}

// restoreSessions reopens slot i's sessions from the state file; one that
// another grant holds already stays with it.
func (t *Table) restoreSessions(i int32, sessions map[string]time.Time) {
	for _, key := range slices.Sorted(maps.Keys(sessions)) {
		if _, taken := t.sessions[key]; taken {
			continue
		}
		t.open[i] = append(t.open[i], session{key: key, opened: sessions[key].UnixNano()})
		t.sessions[key] = i
	}
	t.at(i).nsess = uint16(len(t.open[i]))
}
