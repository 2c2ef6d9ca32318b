package grants

import "strings"

// meta is the (daemon, host) pair of a grant: a handful of distinct values
// shared by every grant, stored once.
type meta struct{ daemon, host string }

// metaTable interns meta values with reference counts, so values no grant
// uses any more (a host name that changed) are freed. Index 0 is unused, the
// zero value of an entry.
type metaTable struct {
	list  []metaRec
	index map[meta]uint32
	free  []uint32
}

type metaRec struct {
	meta
	refs int
}

func newMetaTable() metaTable {
	return metaTable{list: make([]metaRec, 1), index: make(map[meta]uint32)}
}

func (m *metaTable) get(i uint32) meta { return m.list[i].meta }

func (m *metaTable) acquire(daemon, host string) uint32 {
	if i, ok := m.index[meta{daemon, host}]; ok {
		m.list[i].refs++
		return i
	}
	rec := metaRec{meta: meta{strings.Clone(daemon), strings.Clone(host)}, refs: 1}
	var i uint32
	if n := len(m.free); n > 0 {
		i = m.free[n-1]
		m.free = m.free[:n-1]
		m.list[i] = rec
	} else {
		i = uint32(len(m.list))
		m.list = append(m.list, rec)
	}
	m.index[rec.meta] = i
	return i
}

func (m *metaTable) release(i uint32) {
	if i == 0 {
		return
	}
	if m.list[i].refs--; m.list[i].refs == 0 {
		delete(m.index, m.list[i].meta)
		m.list[i] = metaRec{}
		m.free = append(m.free, i)
	}
}
