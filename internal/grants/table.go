package grants

import (
	"net/netip"
	"runtime"
	"slices"
	"time"

	"github.com/relaygate/relaygate/internal/grants/offheap"
)

// Table is the set of granted addresses. It does no I/O and reads no clock:
// every method takes the time from its caller, so tests drive it exactly.
// It is not safe for concurrent use; one goroutine (cdbwriter's Service)
// owns it.
//
// It is laid out for a million grants, about 90 MB in all: each grant is
// a 56-byte slot in fixed-size chunks, with no allocation per grant and no
// copying as the table grows; an open-addressing index of slot numbers
// finds it (addrindex.go); the least-recently-logged-in order links slots
// by number (slots.go); and a heap schedules expiry (expiry.go), so a
// login and a timer tick cost O(log n) instead of a scan of every grant.
// User names live in one arena (userarena.go), daemon and host are
// interned (intern.go), open sessions kept aside (most grants have none),
// and times are wall-clock nanoseconds, as the state file keeps them. The
// slots, index, heap and names hold no pointers and live outside the Go
// heap (package offheap), so they cost their own size and nothing in
// garbage-collector headroom.
type Table struct {
	grace      time.Duration
	maxSession time.Duration
	maxEntries int
	exclude    []netip.Prefix

	mem        *offheap.Memory // owns chunks, index, expiry and users
	index      addrIndex       // address (As16 of the unmapped form) → slot
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
	// last save (see unsaved.go). lostTrack says gone outgrew its bound,
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

// chunkBits sizes the slot chunks: 4096 slots of 56 bytes.
const chunkBits = 12

// DefaultMaxSession closes a session whose logout was never seen.
const DefaultMaxSession = 24 * time.Hour

// DefaultMaxEntries bounds the table, and with it the map and memory, under a
// flood of logins from distinct addresses.
const DefaultMaxEntries = 100000

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
		mem:        offheap.New(),
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

// Release frees the table's arrays outside the Go heap now, instead of
// when the garbage collector finds the table unreachable: for a caller
// that builds many large tables one after another (a benchmark of
// restarts). The table must not be used after.
func (t *Table) Release() {
	runtime.SetFinalizer(t, nil)
	t.release()
}

// release frees the arrays outside the Go heap, forgetting them first: the
// finalizer's t is reachable until it returns, and the collector must not
// meet a slice of unmapped memory in it.
func (t *Table) release() {
	t.chunks, t.index.buckets, t.expiry, t.users.blocks = nil, nil, nil, nil
	t.mem.FreeAll()
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

// Grants returns a copy of every grant, sorted by address.
func (t *Table) Grants() []Grant {
	defer runtime.KeepAlive(t)
	out := make([]Grant, 0, t.n)
	t.each(func(i int32, _ *entry) { out = append(out, t.grantAt(i)) })
	slices.SortFunc(out, func(a, b Grant) int { return a.Addr.Compare(b.Addr) })
	return out
}

// Grace is how long a login grants relay.
func (t *Table) Grace() time.Duration { return t.grace }

// MaxEntries is the most grants the table holds (TableConfig.MaxEntries).
func (t *Table) MaxEntries() int { return t.maxEntries }

// Len is the number of granted addresses.
func (t *Table) Len() int { return t.n }

// Evictions counts grants evicted because the table was full.
func (t *Table) Evictions() uint64 { return t.evictions }

// Versions returns the membership and change counters (see Table).
func (t *Table) Versions() (members, changes uint64) { return t.members, t.changes }

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
