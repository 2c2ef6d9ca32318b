package cdbwriter

import (
	"bufio"
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
	"os"
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
	w    *bufio.Writer
	pos  uint64
	recs []cdbRec
	key  []byte
	rec  []byte // one record, written at once
	err  error
}

type cdbRec struct{ hash, pos uint32 }

const cdbHeaderSize = 256 * 8

var errCDBTooLarge = errors.New("cdb files are limited to 4 GiB")

// newCDBMaker starts a cdb in f for about n keys.
func newCDBMaker(f *os.File, n int) *cdbMaker {
	m := &cdbMaker{
		f:    f,
		w:    bufio.NewWriterSize(f, 256<<10),
		pos:  cdbHeaderSize,
		recs: make([]cdbRec, 0, n),
		key:  make([]byte, 0, 64),
		rec:  make([]byte, 0, 128),
	}
	_, m.err = m.w.Write(make([]byte, cdbHeaderSize))
	return m
}

func cdbHash(b []byte) uint32 {
	h := uint32(5381)
	for _, c := range b {
		h = (h<<5 + h) ^ uint32(c)
	}
	return h
}

// put adds a record.
func (m *cdbMaker) put(key, value []byte) {
	if m.err != nil {
		return
	}
	size := 8 + uint64(len(key)) + uint64(len(value))
	if m.pos+size > math.MaxUint32 {
		m.err = errCDBTooLarge
		return
	}
	m.recs = append(m.recs, cdbRec{hash: cdbHash(key), pos: uint32(m.pos)})
	m.rec = binary.LittleEndian.AppendUint32(m.rec[:0], uint32(len(key)))
	m.rec = binary.LittleEndian.AppendUint32(m.rec, uint32(len(value)))
	m.rec = append(append(m.rec, key...), value...)
	_, m.err = m.w.Write(m.rec)
	m.pos += size
}

// putAddr adds a's Postfix lookup key (Key(a), without a trailing NUL, as
// postmap writes it) with value MapValue, without allocating.
func (m *cdbMaker) putAddr(a netip.Addr) {
	m.key = a.Unmap().AppendTo(m.key[:0])
	m.put(m.key, mapValue)
}

var mapValue = []byte(MapValue)

// finish writes the hash tables and the header.
func (m *cdbMaker) finish() error {
	if m.err != nil {
		return m.err
	}
	if m.pos+16*uint64(len(m.recs)) > math.MaxUint32 {
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
	byTable := make([]cdbRec, len(m.recs))
	next := start
	for _, r := range m.recs {
		t := r.hash & 0xff
		byTable[next[t]] = r
		next[t]++
	}
	slots := make([]cdbRec, 2*largest)
	buf := make([]byte, 8*len(slots))
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
		out := buf[:8*size]
		for s, r := range table {
			binary.LittleEndian.PutUint32(out[8*s:], r.hash)
			binary.LittleEndian.PutUint32(out[8*s+4:], r.pos)
		}
		if _, err := m.w.Write(out); err != nil {
			return err
		}
		m.pos += uint64(len(out))
	}
	if err := m.w.Flush(); err != nil {
		return err
	}
	_, err := m.f.WriteAt(header[:], 0)
	return err
}
