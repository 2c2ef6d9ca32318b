package grants

import (
	"cmp"
	"errors"
	"math"
	"net/netip"
	"runtime"
	"slices"
	"time"
)

// Loader fills an empty table from a state file's lines, in file order,
// without a Grant per address in between: each line (Put or Remove)
// inserts, replaces or removes its address's slot, and Finish then does
// what Restore does with the grants the file holds in the end (each
// address's last line, none for a removed one), so the table ends up the
// same, to its order of eviction and expiry. A Grant for each of a million
// addresses, and a Go map of them, made a restart slower and its memory
// peak higher than the table itself.
//
// The addresses the file accounts for (Accounted) are those in the table
// and those set aside: removed, ungrantable, excluded or expired, or
// evicted by MaxEntries. None are set aside in a state file as relaygate
// writes it whole, and their keys hold no pointers, so they cost neither
// the collector nor memory at a million grants.
type Loader struct {
	t         *Table
	now       time.Time
	grantable func(netip.Addr) bool

	next     uint32                         // distinct addresses seen so far
	first    []uint32                       // slot → when its address was first seen (next)
	aside    map[[16]byte]asideAddr         // accounted for, not in the table
	sessions map[int32]map[string]time.Time // slot → open sessions, restored by Finish
	odd      map[int32]time.Time            // slot → expiry that UnixNano cannot order
	done     bool
}

type asideAddr struct {
	first uint32
	why   asideReason
}

type asideReason uint8

const (
	asideRemoved asideReason = iota + 1
	asideUngrantable
	asideExcluded
	asideExpired
	asideEvicted
)

// NewLoader starts loading into t, which must be empty: the order of
// eviction and expiry Finish builds assumes it holds nothing else.
// grantable says which addresses today's rules may grant at all; now is
// the time of the start, before which a grant without sessions has
// expired.
func NewLoader(t *Table, grantable func(netip.Addr) bool, now time.Time) (*Loader, error) {
	if t.n != 0 {
		return nil, errors.New("table not empty")
	}
	return &Loader{t: t, now: now, grantable: grantable,
		aside: make(map[[16]byte]asideAddr), sessions: make(map[int32]map[string]time.Time), odd: make(map[int32]time.Time)}, nil
}

// Reserve makes room in the table's index for about n addresses (at most
// MaxEntries), as Restore does for its grants, so the index is not
// rehashed a dozen times on the way to a million.
func (l *Loader) Reserve(n int) {
	defer runtime.KeepAlive(l.t)
	l.t.reserve(min(n, l.t.maxEntries))
}

// Put applies a line granting g: the address's grant as the line says,
// replacing what an earlier line said; or, for a grant Restore would not
// restore (ungrantable, excluded, expired), none, with the address set
// aside as accounted for. g itself is not kept, its Sessions map is (until
// Finish): the caller must not change it.
func (l *Loader) Put(g *Grant) {
	defer runtime.KeepAlive(l.t)
	a := g.Addr.Unmap()
	var why asideReason
	switch {
	case !l.grantable(a):
		why = asideUngrantable
	case l.t.Excluded(a):
		why = asideExcluded
	case !g.Open() && !g.Expires.After(l.now):
		why = asideExpired
	}
	l.line(a, g, why)
}

// Remove applies a line removing a (a tombstone).
func (l *Loader) Remove(a netip.Addr) {
	defer runtime.KeepAlive(l.t)
	l.line(a.Unmap(), nil, asideRemoved)
}

// line applies one line for a: g, or aside for why. The slot is only filled
// in: the eviction order, the expiry schedule and sessions wait for Finish,
// which needs every line. No eviction either: a later line may remove a
// grant and make room for one evicted too early.
func (l *Loader) line(a netip.Addr, g *Grant, why asideReason) {
	t := l.t
	key := a.As16()
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
	if why != 0 {
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
	// The rank Finish sorts by, kept in queued until then: UnixNano
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

// forget empties slot i, which line filled, as if it never had been: no
// tombstone for the next save, no eviction, no change counted.
func (l *Loader) forget(i int32) {
	delete(l.sessions, i)
	delete(l.odd, i)
	l.t.freeSlot(i)
}

// Abandon empties the table of what was loaded (the file could not be
// read), leaving it as new; Finish then does nothing.
func (l *Loader) Abandon() {
	l.t.each(func(i int32, _ *entry) { l.forget(i) })
	l.done = true
}

// LoadCounts is what a start logs about its state file, as if it had read
// the file's grants (each address's last line, none for a removed one) and
// restored them: Readable grants, of which Ungrantable were dropped,
// Restorable reached Restore, and Restored were added (an address then
// evicted included).
type LoadCounts struct {
	Readable, Ungrantable, Restorable, Restored int
}

// Counts returns the counts of the lines so far; call it before Finish,
// which may evict.
func (l *Loader) Counts() LoadCounts {
	c := LoadCounts{Restored: l.t.n}
	for _, x := range l.aside {
		switch x.why {
		case asideUngrantable:
			c.Ungrantable++
		case asideExcluded, asideExpired:
			c.Restorable++
		}
	}
	c.Restorable += c.Restored
	c.Readable = c.Restorable + c.Ungrantable
	return c
}

// Finish does to the loaded slots what Restore does to the grants it is
// given: oldest expiry first (the first seen first among equals, as
// Restore's stable sort keeps the file's order), each linked at the back
// of the eviction order with its sessions restored, scheduled and marked
// for the state file; past MaxEntries, the front is evicted before each
// one, evictions counted and tombstoned as Restore's are.
func (l *Loader) Finish() {
	t := l.t
	defer runtime.KeepAlive(t)
	if l.done {
		return
	}
	l.done = true
	type ranked struct {
		key   int64 // expiry, saturated outside UnixNano's range
		first uint32
		slot  int32
	}
	order := make([]ranked, 0, t.n)
	t.each(func(i int32, e *entry) {
		order = append(order, ranked{key: e.queued, first: l.first[i], slot: i})
		e.queued = 0
	})
	slices.SortFunc(order, func(a, b ranked) int {
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		if ea, odd := l.odd[a.slot]; odd {
			if c := ea.Compare(l.odd[b.slot]); c != 0 {
				return c
			}
		}
		return cmp.Compare(a.first, b.first)
	})
	l.first = nil
	for j, r := range order {
		if j >= t.maxEntries && t.head >= 0 {
			evicted := t.at(t.head)
			l.aside[evicted.addr] = asideAddr{why: asideEvicted}
			t.remove(t.head)
			t.evictions++
		}
		t.pushBack(r.slot)
		t.members++
		if ss := l.sessions[r.slot]; len(ss) > 0 {
			t.restoreSessions(r.slot, ss)
		}
		t.schedule(r.slot)
		t.touch(r.slot)
	}
	l.sessions, l.odd = nil, nil
}

// Accounted reports whether the file had a line for a: it is in the table,
// or it was set aside.
func (l *Loader) Accounted(a netip.Addr) bool {
	defer runtime.KeepAlive(l.t)
	key := a.Unmap().As16()
	if _, in := l.t.get(key); in {
		return true
	}
	_, aside := l.aside[key]
	return aside
}
