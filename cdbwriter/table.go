// Package cdbwriter keeps the table of granted client addresses and publishes
// it as the cdb map Postfix reads with check_client_access, plus a state file
// so grants survive a restart.
package cdbwriter

import (
	"cmp"
	"maps"
	"math"
	"math/bits"
	"net/netip"
	"runtime"
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
//
// It is laid out for a million grants, about 90 MB in all: each grant is
// a 56-byte slot in fixed-size chunks, with no allocation per grant and no
// copying as the table grows; an open-addressing index of slot numbers
// finds it (index.go); the least-recently-logged-in order links slots by
// number; and a heap schedules expiry, so a login and a timer tick cost
// O(log n) instead of a scan of every grant. User names live in one arena
// (userArena), daemon and host are interned, open sessions kept aside
// (most grants have none), and times are wall-clock nanoseconds, as the
// state file keeps them. The slots, index, heap and names hold no
// pointers and live outside the Go heap (offheap.go), so they cost their
// own size and nothing in garbage-collector headroom.
type Table struct {
	grace      time.Duration
	maxSession time.Duration
	maxEntries int
	exclude    []netip.Prefix

	mem        *offHeap  // owns chunks, index, expiry and users
	index      addrIndex // address (As16 of the unmapped form) → slot
	chunks     [][]entry
	slots      int32 // slots ever handed out
	free       int32 // first free slot, linked through next; none if < 0
	n          int   // grants in the table
	head, tail int32 // least and most recently logged in; none if < 0
	expiry     expiryHeap
	metas      metaTable
	users      userArena
	sessions   map[string]int32    // open session key → its grant's slot
	open       map[int32][]session // a grant's open sessions, only while it has any
	evictions  uint64

	// The state file is saved incrementally: dirty marks the slots whose
	// line in it is out of date, gone lists the addresses removed since the
	// last save (see appendState). lostTrack says gone outgrew its bound,
	// so only a whole new file is right.
	dirty     []uint64
	ndirty    int
	gone      [][16]byte
	lostTrack bool

	// members counts changes to the set of addresses, which is all the map
	// holds; changes also counts expiry and session moves, which only the
	// state file records. A writer compares them with what it last wrote,
	// so a failed write is retried instead of forgotten.
	members uint64
	changes uint64
}

// entry is one grant's slot. It holds no pointers (see Table).
type entry struct {
	addr    [16]byte // As16 of the unmapped address
	expires int64    // unix nanoseconds
	queued  int64    // when this slot's live expiry-heap item fires; 0: none
	prev    int32
	next    int32 // also links the free list
	meta    uint32
	userOff uint32 // block<<arenaBlockBits | offset of the user name (userArena.of)
	userLen uint16
	nsess   uint16 // open sessions, kept in Table.open
	// gen is odd while the slot holds a grant. It is bumped when a grant
	// enters or leaves the slot, so the heap items of an earlier grant in
	// a reused slot are told apart from the current grant's.
	gen uint16
}

func (e *entry) used() bool { return e.gen&1 == 1 }

type session struct {
	key    string
	opened int64 // unix nanoseconds
}

// chunkBits sizes the slot chunks: 4096 slots of 56 bytes.
const chunkBits = 12

// DefaultMaxSession closes a session whose logout was never seen.
const DefaultMaxSession = 24 * time.Hour

// DefaultMaxEntries bounds the table, and with it the map and memory, under a
// flood of logins from distinct addresses.
const DefaultMaxEntries = 100000

// maxSessionsPerAddr bounds the open sessions one address can hold, so a
// flood of logins that never log out cannot grow memory without limit.
const maxSessionsPerAddr = 256

// TableConfig sets a Table's policy.
type TableConfig struct {
	Grace      time.Duration  // how long a login grants relay
	MaxSession time.Duration  // a session with no logout closes by itself after this (DefaultMaxSession if 0)
	MaxEntries int            // when full, the least recently logged-in grant is evicted (DefaultMaxEntries if 0)
	Exclude    []netip.Prefix // networks never granted
}

// NewTable returns an empty table.
func NewTable(c TableConfig) *Table {
	if c.MaxSession <= 0 {
		c.MaxSession = DefaultMaxSession
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	t := &Table{
		mem:        newOffHeap(),
		grace:      c.Grace,
		maxSession: c.MaxSession,
		maxEntries: c.MaxEntries,
		exclude:    c.Exclude,
		free:       -1,
		head:       -1,
		tail:       -1,
		metas:      newMetaTable(),
		sessions:   make(map[string]int32),
		open:       make(map[int32][]session),
	}
	t.index = newAddrIndex(t.mem)
	// The arrays outside the Go heap go with the table (go.mod's Go
	// predates runtime.AddCleanup). Pointers into them do not keep the
	// table alive, so every method that reaches them from outside the
	// package's own calls keeps t alive until it returns (KeepAlive):
	// otherwise a table dropped by its caller during its last call could
	// be freed under that call.
	runtime.SetFinalizer(t, (*Table).release)
	return t
}

// release frees the arrays outside the Go heap, forgetting them first: the
// finalizer's t is reachable until it returns, and the collector must not
// meet a slice of unmapped memory in it.
func (t *Table) release() {
	t.chunks, t.index.buckets, t.expiry, t.users.blocks = nil, nil, nil, nil
	t.mem.freeAll()
}

func (t *Table) at(i int32) *entry { return &t.chunks[i>>chunkBits][i&(1<<chunkBits-1)] }

// each calls f for every grant, in slot order (which is no order at all:
// neither the map nor the state file needs one).
func (t *Table) each(f func(i int32, e *entry)) {
	defer runtime.KeepAlive(t)
	for c, chunk := range t.chunks {
		for j := range chunk {
			if e := &chunk[j]; e.used() {
				f(int32(c<<chunkBits+j), e)
			}
		}
	}
}

func addrOf(e *entry) netip.Addr { return netip.AddrFrom16(e.addr).Unmap() }

// Evictions counts grants evicted because the table was full.
func (t *Table) Evictions() uint64 { return t.evictions }

// SetExclude replaces the excluded networks and removes the grants now
// inside them, which it returns: an operator who excludes a network expects
// it out of the map at once.
func (t *Table) SetExclude(exclude []netip.Prefix) []Grant {
	defer runtime.KeepAlive(t)
	t.exclude = exclude
	var gone []Grant
	t.each(func(i int32, e *entry) {
		if t.Excluded(addrOf(e)) {
			gone = append(gone, t.grantAt(i))
			t.remove(i)
		}
	})
	return t.removed(gone)
}

// removed records that the grants gone were removed, and returns them
// sorted by address.
func (t *Table) removed(gone []Grant) []Grant {
	if len(gone) == 0 {
		return nil
	}
	t.members++
	t.changes++
	slices.SortFunc(gone, func(a, b Grant) int { return a.Addr.Compare(b.Addr) })
	return gone
}

// remove deletes slot i, its sessions and its place in the order. Its
// expiry-heap item is left to be skipped when it comes up.
func (t *Table) remove(i int32) {
	e := t.at(i)
	for _, s := range t.open[i] {
		delete(t.sessions, s.key)
	}
	delete(t.open, i)
	t.unlink(i)
	t.clean(i)
	if len(t.gone) < t.maxEntries+4096 {
		t.gone = append(t.gone, e.addr)
	} else {
		t.lostTrack = true
	}
	t.del(i)
	t.metas.release(e.meta)
	t.users.release(e)
	*e = entry{next: t.free, gen: e.gen + 1}
	t.free = i
	t.n--
}

// newSlot takes a free slot (or a new one) for addr and indexes it; the
// caller links it into the eviction order.
func (t *Table) newSlot(addr [16]byte) int32 {
	var i int32
	if t.free >= 0 {
		i = t.free
		t.free = t.at(i).next
	} else {
		if int(t.slots)>>chunkBits == len(t.chunks) {
			t.chunks = append(t.chunks, offHeapSlice[entry](t.mem, 1<<chunkBits))
		}
		i = t.slots
		t.slots++
	}
	e := t.at(i)
	*e = entry{addr: addr, gen: e.gen + 1, prev: -1, next: -1}
	t.put(i)
	t.n++
	return i
}

// insert adds a grant for addr, evicting the least recently logged-in one
// if the table is full, and returns its slot.
func (t *Table) insert(addr [16]byte) int32 {
	for t.n >= t.maxEntries && t.head >= 0 {
		t.remove(t.head)
		t.evictions++
	}
	i := t.newSlot(addr)
	t.pushBack(i)
	t.members++
	return i
}

func (t *Table) unlink(i int32) {
	e := t.at(i)
	if e.prev >= 0 {
		t.at(e.prev).next = e.next
	} else {
		t.head = e.next
	}
	if e.next >= 0 {
		t.at(e.next).prev = e.prev
	} else {
		t.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

func (t *Table) pushBack(i int32) {
	e := t.at(i)
	e.prev, e.next = t.tail, -1
	if t.tail >= 0 {
		t.at(t.tail).next = i
	} else {
		t.head = i
	}
	t.tail = i
}

// grantAt copies slot i out as a Grant.
func (t *Table) grantAt(i int32) Grant {
	e := t.at(i)
	m := t.metas.get(e.meta)
	g := Grant{Addr: addrOf(e), Expires: time.Unix(0, e.expires), User: string(t.users.of(e)), Daemon: m.daemon, Host: m.host}
	if ss := t.open[i]; len(ss) > 0 {
		g.Sessions = make(map[string]time.Time, len(ss))
		for _, s := range ss {
			g.Sessions[s.key] = time.Unix(0, s.opened)
		}
	}
	return g
}

// Lookup returns a's grant, if it has one.
func (t *Table) Lookup(a netip.Addr) (Grant, bool) {
	defer runtime.KeepAlive(t)
	i, ok := t.get(a.Unmap().As16())
	if !ok {
		return Grant{}, false
	}
	return t.grantAt(i), true
}

// Grace is how long a login grants relay.
func (t *Table) Grace() time.Duration { return t.grace }

// Len is the number of granted addresses.
func (t *Table) Len() int { return t.n }

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

func sessionKey(daemon, session string) string { return daemon + "/" + session }

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

// Restore adds grants read from a state file, keeping their expiry and open
// sessions. Expired and excluded ones are skipped; the number restored is
// returned.
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

// restoreLine applies one line of the state file l is loading (g, its
// address unmapped): the address's grant as the line says, replacing what
// an earlier line said, or, for a line Restore would not restore (removed,
// ungrantable, excluded, expired), none, with the address set aside as
// accounted for. The slot is only filled in: the eviction order, the
// expiry schedule and sessions wait for l.finish, which needs every line.
// No eviction either: a later line may remove a grant and make room for
// one evicted too early.
func (t *Table) restoreLine(l *tableLoad, g *Grant) {
	key := g.Addr.As16()
	i, in := t.get(key)
	var first uint32
	if in {
		first = l.first[i]
	} else if x, ok := l.aside[key]; ok {
		first = x.first
	} else {
		first = l.next
		l.next++
	}
	if why := l.why(g); why != 0 {
		if in {
			l.forget(i)
		}
		l.aside[key] = asideAddr{first: first, why: why}
		return
	}
	if !in {
		delete(l.aside, key)
		i = t.newSlot(key)
		if int(i) >= len(l.first) {
			l.first = append(l.first, make([]uint32, int(i)+1-len(l.first))...)
		}
		l.first[i] = first
	}
	e := t.at(i)
	e.expires = g.Expires.UnixNano()
	// The rank finish sorts by, kept in queued until then: UnixNano
	// orders as time.Time does only between the years 1678 and 2262.
	e.queued = e.expires
	delete(l.odd, i)
	if y := g.Expires.UTC().Year(); y < 1679 || y > 2261 {
		e.queued = math.MaxInt64
		if y < 1679 {
			e.queued = math.MinInt64
		}
		l.odd[i] = g.Expires
	}
	t.setInfo(e, g.User, g.Daemon, g.Host)
	if len(g.Sessions) > 0 {
		l.sessions[i] = g.Sessions
	} else {
		delete(l.sessions, i)
	}
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

// due is when slot i next needs Expire: its expiry, or while it has open
// sessions, when the oldest of them reaches the session limit.
func (t *Table) due(i int32) int64 {
	e := t.at(i)
	if e.nsess == 0 {
		return e.expires
	}
	first := int64(0)
	for _, s := range t.open[i] {
		if first == 0 || s.opened < first {
			first = s.opened
		}
	}
	return first + int64(t.maxSession)
}

// schedule makes sure slot i has a heap item no later than its due time.
// An item that is earlier than needed is corrected when it comes up, so a
// repeat login, which only moves the expiry later, pushes nothing.
func (t *Table) schedule(i int32) {
	e := t.at(i)
	if d := t.due(i); e.queued == 0 || d < e.queued {
		e.queued = d
		t.expiry.push(t.mem, expiryItem{at: d, slot: i, gen: e.gen})
		if len(t.expiry) > 2*t.n+1024 {
			t.compactExpiry()
		}
	}
}

// live reports whether a heap item is its slot's current one; items of
// removed grants and superseded items are skipped.
func (t *Table) live(it expiryItem) bool {
	e := t.at(it.slot)
	return e.gen == it.gen && e.queued == it.at && e.used()
}

// compactExpiry drops dead heap items, so evictions and logouts cannot grow
// the heap beyond a small multiple of the table.
func (t *Table) compactExpiry() {
	kept := t.expiry[:0]
	for _, it := range t.expiry {
		if t.live(it) {
			kept = append(kept, it)
		}
	}
	clear(t.expiry[len(kept):])
	t.expiry = kept
	t.expiry.init()
}

// Expire closes sessions older than the session limit, removes every grant
// without an open session whose expiry is not after now, and returns the
// removed grants.
func (t *Table) Expire(now time.Time) []Grant {
	defer runtime.KeepAlive(t)
	ns := now.UnixNano()
	var gone []Grant
	for len(t.expiry) > 0 && t.expiry[0].at <= ns {
		it := t.expiry.pop()
		if !t.live(it) {
			continue
		}
		e := t.at(it.slot)
		e.queued = 0
		if e.nsess > 0 {
			var lost []session
			for _, s := range t.open[it.slot] {
				if s.opened+int64(t.maxSession) <= ns {
					lost = append(lost, s)
				}
			}
			// Oldest first, so grace runs from the last of them.
			slices.SortFunc(lost, func(a, b session) int { return cmp.Compare(a.opened, b.opened) })
			for _, s := range lost {
				t.closeSession(s.key, s.opened+int64(t.maxSession))
			}
		}
		if e.nsess == 0 && e.expires <= ns {
			gone = append(gone, t.grantAt(it.slot))
			t.remove(it.slot)
			continue
		}
		t.schedule(it.slot)
	}
	return t.removed(gone)
}

// NextExpiry returns when Expire next has work: the earliest expiry of a
// grant without open sessions, or the earliest session limit. False if the
// table is empty.
func (t *Table) NextExpiry() (time.Time, bool) {
	defer runtime.KeepAlive(t)
	for len(t.expiry) > 0 {
		top := t.expiry[0]
		if !t.live(top) {
			t.expiry.pop()
			continue
		}
		if d := t.due(top.slot); d > top.at {
			// Extended since it was queued: move it to its real time.
			t.expiry.pop()
			t.at(top.slot).queued = 0
			t.schedule(top.slot)
			continue
		}
		return time.Unix(0, top.at), true
	}
	return time.Time{}, false
}

// Grants returns a copy of every grant, sorted by address.
func (t *Table) Grants() []Grant {
	defer runtime.KeepAlive(t)
	out := make([]Grant, 0, t.n)
	t.each(func(i int32, _ *entry) { out = append(out, t.grantAt(i)) })
	slices.SortFunc(out, func(a, b Grant) int { return a.Addr.Compare(b.Addr) })
	return out
}

// Versions returns the membership and change counters (see Table).
func (t *Table) Versions() (members, changes uint64) { return t.members, t.changes }

// touch records a change to slot i that the state file must get.
func (t *Table) touch(i int32) {
	t.changes++
	w, bit := int(i>>6), uint64(1)<<(i&63)
	if w >= len(t.dirty) {
		t.dirty = append(t.dirty, make([]uint64, w+1-len(t.dirty))...)
	}
	if t.dirty[w]&bit == 0 {
		t.dirty[w] |= bit
		t.ndirty++
	}
}

func (t *Table) clean(i int32) {
	w, bit := int(i>>6), uint64(1)<<(i&63)
	if w < len(t.dirty) && t.dirty[w]&bit != 0 {
		t.dirty[w] &^= bit
		t.ndirty--
	}
}

// unsaved is how many lines an incremental save would append, or -1 when
// only a whole new file can bring the state file up to date.
func (t *Table) unsaved() int {
	if t.lostTrack {
		return -1
	}
	return t.ndirty + len(t.gone)
}

// eachUnsaved calls removed for every address removed and then changed for
// every slot changed since the last save. Removals go first: an address
// removed and granted again is changed, and its last line must be the
// grant.
func (t *Table) eachUnsaved(changed func(i int32, e *entry), removed func(a netip.Addr)) {
	defer runtime.KeepAlive(t)
	for _, a := range t.gone {
		removed(netip.AddrFrom16(a).Unmap())
	}
	for w, word := range t.dirty {
		for ; word != 0; word &= word - 1 {
			i := int32(w<<6 + bits.TrailingZeros64(word))
			changed(i, t.at(i))
		}
	}
}

// saved records that the state file now holds the whole table.
func (t *Table) saved() {
	clear(t.dirty)
	t.ndirty = 0
	t.gone = t.gone[:0]
	t.lostTrack = false
}
