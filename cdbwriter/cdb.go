package cdbwriter

import (
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
	"os"

	"github.com/relaygate/relaygate/internal/grants/offheap"
)

// cdbMaker writes a cdb file in one pass over the keys: a blank header, the
// records as they come, the 256 hash tables, then the header in place. The
// layout is tinycdb's cdb_make, which postmap uses: records in insertion
// order, each table twice as many slots as keys, a key in slot
// (hash>>8) % size or the next free one. The same keys in the same order
// give the same bytes as postmap.
//
// It replaces colinmarc/cdb's Writer for publishing: that one allocates per
// key, and the map is rewritten, whole, once per -flush.
type cdbMaker struct {
	f    *os.File
	buf  []byte // records not yet written, appended in place
	pos  uint64
	recs []cdbRec
	err  error
	// mem holds recs and finish's copy of them outside the Go heap: 16 MB
	// at a million keys, garbage after every publish, which on the heap
	// would raise the collector's goal as much as a table that size.
	mem *offheap.Memory
}

type cdbRec struct{ hash, pos uint32 }

const cdbHeaderSize = 256 * 8

var errCDBTooLarge = errors.New("cdb files are limited to 4 GiB")

// cdbFlushAt is how many bytes of records are gathered per write.
const cdbFlushAt = 256 << 10

// newCDBMaker starts a cdb in f for about n keys.
func newCDBMaker(f *os.File, n int) *cdbMaker {
	mem := offheap.New()
	return &cdbMaker{
		f:    f,
		buf:  make([]byte, cdbHeaderSize, cdbFlushAt+1024),
		pos:  cdbHeaderSize,
		recs: offheap.Slice[cdbRec](mem, n)[:0],
		mem:  mem,
	}
}

// flush writes the gathered bytes.
func (m *cdbMaker) flush() {
	if m.err == nil && len(m.buf) > 0 {
		_, m.err = m.f.Write(m.buf)
	}
	m.buf = m.buf[:0]
}

func cdbHash(b []byte) uint32 {
	h := uint32(5381)
	for _, c := range b {
		h = (h<<5 + h) ^ uint32(c)
	}
	return h
}

// putAddr adds a's Postfix lookup key (Key(a), without a trailing NUL, as
// postmap writes it) with the value MapValue. The record is formatted in
// place, the key straight into the write buffer.
func (m *cdbMaker) putAddr(a netip.Addr) {
	start := len(m.buf)
	m.buf = append(m.buf, 0, 0, 0, 0, 0, 0, 0, 0)
	m.buf = a.Unmap().AppendTo(m.buf)
	key := m.buf[start+8:]
	binary.LittleEndian.PutUint32(m.buf[start:], uint32(len(key)))
	binary.LittleEndian.PutUint32(m.buf[start+4:], uint32(len(MapValue)))
	m.recs = append(m.recs, cdbRec{hash: cdbHash(key), pos: uint32(m.pos)})
	m.buf = append(m.buf, MapValue...)
	m.pos += uint64(len(m.buf) - start)
	if m.pos > math.MaxUint32 && m.err == nil {
		m.err = errCDBTooLarge
	}
	if len(m.buf) >= cdbFlushAt {
		m.flush()
	}
}

var errCDBFinished = errors.New("cdb already finished")

// finish writes the hash tables and the header, and frees the records. The
// maker is spent: its records are unmapped, so nothing may read them again.
func (m *cdbMaker) finish() error {
	defer func() {
		m.recs = nil
		m.mem.FreeAll()
		if m.err == nil {
			m.err = errCDBFinished
		}
	}()
	if m.err != nil {
		return m.err
	}
	if m.pos+8*uint64(2*len(m.recs)) > math.MaxUint32 {
		return errCDBTooLarge
	}
	// Group the records by table (hash & 0xff), keeping insertion order
	// within each, as tinycdb does.
	var count, start [256]int
	for _, r := range m.recs {
		count[r.hash&0xff]++
	}
	largest := 0
	for t, sum := 0, 0; t < 256; t++ {
		start[t] = sum
		sum += count[t]
		largest = max(largest, count[t])
	}
	byTable := offheap.Slice[cdbRec](m.mem, len(m.recs))
	next := start
	for _, r := range m.recs {
		t := r.hash & 0xff
		byTable[next[t]] = r
		next[t]++
	}
	slots := make([]cdbRec, 2*largest)
	var header [cdbHeaderSize]byte
	for t := 0; t < 256; t++ {
		size := 2 * count[t]
		binary.LittleEndian.PutUint32(header[t*8:], uint32(m.pos))
		binary.LittleEndian.PutUint32(header[t*8+4:], uint32(size))
		if size == 0 {
			continue
		}
		table := slots[:size]
		clear(table)
		for _, r := range byTable[start[t] : start[t]+count[t]] {
			// A record is never at position 0 (the header is), so pos
			// marks an occupied slot.
			s := int((r.hash >> 8) % uint32(size))
			for table[s].pos != 0 {
				if s++; s == size {
					s = 0
				}
			}
			table[s] = r
		}
		for _, r := range table {
			m.buf = binary.LittleEndian.AppendUint32(m.buf, r.hash)
			m.buf = binary.LittleEndian.AppendUint32(m.buf, r.pos)
		}
		m.pos += 8 * uint64(size)
		if len(m.buf) >= cdbFlushAt {
			m.flush()
		}
	}
	if m.flush(); m.err != nil {
		return m.err
	}
	_, err := m.f.WriteAt(header[:], 0)
	return err
}
