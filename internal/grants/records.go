package grants

import (
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Record is one grant as the table holds it, lent to a writer for one call
// of its callback: User (in the table's arena, outside the Go heap) and
// Sessions are the table's memory, valid only until the callback returns,
// and must be copied to be kept. Lending rather than copying out a Grant
// lets the state file of a million grants be written without a million
// allocations.
type Record struct {
	Addr     netip.Addr
	Expires  time.Time // UTC
	User     []byte
	Daemon   string
	Host     string
	Sessions []OpenSession // sorted by key
}

// OpenSession is one of a Record's open sessions.
type OpenSession struct {
	Key    string    // "daemon/id"
	Opened time.Time // UTC
}

// Each calls f for every grant, in no particular order. f must not change
// the table.
func (t *Table) Each(f func(r *Record)) {
	var r Record
	t.each(func(i int32, e *entry) {
		t.record(&r, i, e)
		f(&r)
	})
}

// EachAddr calls f with every granted address (unmapped), in no particular
// order: all the map needs. f must not change the table.
func (t *Table) EachAddr(f func(a netip.Addr)) {
	defer runtime.KeepAlive(t)
	for _, chunk := range t.chunks {
		for j := range chunk {
			if e := &chunk[j]; e.used() {
				f(addrOf(e))
			}
		}
	}
}

// record fills r with slot i, reusing r.Sessions.
func (t *Table) record(r *Record, i int32, e *entry) {
	ss := r.Sessions[:0]
	for _, s := range t.open[i] {
		ss = append(ss, OpenSession{s.key, time.Unix(0, s.opened).UTC()})
	}
	slices.SortFunc(ss, func(a, b OpenSession) int { return strings.Compare(a.Key, b.Key) })
	m := t.metas.get(e.meta)
	*r = Record{Addr: addrOf(e), Expires: time.Unix(0, e.expires).UTC(), User: t.users.of(e),
		Daemon: m.daemon, Host: m.host, Sessions: ss}
}
