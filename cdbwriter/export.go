package cdbwriter

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
)

// What other writers of relaygate's grants share with the map (the
// outputs for other MTAs, internal/outputs): the atomic replace, the
// clean-up of what a crash left, and the cdb format with any keys and
// values.

// WriteFileAtomic replaces path with what write puts in a new file, the
// way the map is replaced: a temporary file in the same directory,
// chmod mode, fsync, rename over path, fsync the directory. On any error
// path is left as it was and the temporary file is removed. A reader
// never sees a partial file.
func WriteFileAtomic(path string, mode os.FileMode, write func(*os.File) error) error {
	return writeAtomic(path, mode, write)
}

// TempPrefix is the start of the name of every temporary file
// WriteFileAtomic makes for path: RemoveStaleTemps removes what begins
// with it. Writers that make their temporary files another way (a program
// such as makemap writing one of its own) name them with it too.
func TempPrefix(path string) string { return tempPrefix + filepath.Base(path) + "-" }

// RemoveStaleTemps deletes the temporary files an earlier crash left next
// to path and returns how many.
func RemoveStaleTemps(path string) (int, error) { return removeStaleTemps(path) }

// CDB writes a cdb file in one pass, records in the order Put is called:
// tinycdb's and D. J. Bernstein's cdb_make layout, byte for byte what
// postmap and tcprules write for the same records in the same order. A
// key put twice is stored twice; a reader finds the first.
type CDB struct{ m *cdbMaker }

// NewCDB starts a cdb in f, an empty file, for about n records.
func NewCDB(f *os.File, n int) *CDB { return &CDB{newCDBMaker(f, n)} }

// Put adds one record.
func (c *CDB) Put(key, value []byte) { c.m.put(key, value) }

// Finish writes the hash tables and the header. The CDB is spent.
func (c *CDB) Finish() error { return c.m.finish() }

// put adds a record with any key and value (putAddr is the map's own,
// formatting the key in place).
func (m *cdbMaker) put(key, value []byte) {
	start := len(m.buf)
	m.buf = binary.LittleEndian.AppendUint32(m.buf, uint32(len(key)))
	m.buf = binary.LittleEndian.AppendUint32(m.buf, uint32(len(value)))
	m.buf = append(m.buf, key...)
	m.buf = append(m.buf, value...)
	m.recs = append(m.recs, cdbRec{hash: cdbHash(key), pos: uint32(m.pos)})
	m.pos += uint64(len(m.buf) - start)
	if (m.pos > math.MaxUint32 || uint64(len(key)) > math.MaxUint32 || uint64(len(value)) > math.MaxUint32) && m.err == nil {
		m.err = errCDBTooLarge
	}
	if len(m.buf) >= cdbFlushAt {
		m.flush()
	}
}
