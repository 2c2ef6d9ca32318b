package cdbwriter

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/colinmarc/cdb"
)

// MapValue is the right-hand side of every key. Postfix's access(5) reads
// "OK" as permit.
const MapValue = "OK"

// tempPrefix marks relaygate's temporary files, so a restart can remove the
// ones a crash left behind without touching anything else in the directory.
const tempPrefix = ".relaygate-tmp-"

// WriteMap atomically replaces the cdb at path with one key per grant. Postfix
// never sees a partial file: the map is written to a temporary file in the
// same directory, synced, renamed over path, and the directory synced. An
// in-place rewrite would corrupt the file under every smtpd that has it
// mapped (postfix-cdb-go-syslog-facts.md C.5).
func WriteMap(path string, grants []Grant) error {
	return writeMap(path, len(grants), func(m *cdbMaker) {
		for _, g := range grants {
			m.putAddr(g.Addr)
		}
	})
}

// writeTableMap is WriteMap for every grant in t, without copying them out.
func writeTableMap(path string, t *Table) error {
	return writeMap(path, t.Len(), func(m *cdbMaker) {
		t.each(func(_ int32, e *entry) { m.putAddr(addrOf(e)) })
	})
}

func writeMap(path string, n int, fill func(*cdbMaker)) error {
	err := writeAtomic(path, 0o644, func(f *os.File) error {
		m := newCDBMaker(f, n)
		fill(m)
		return m.finish()
	})
	if err != nil {
		return fmt.Errorf("publish %s: %w", path, err)
	}
	return nil
}

// ReadMap returns the keys in the cdb at path.
func ReadMap(path string) ([]string, error) {
	db, err := cdb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read map %s: %w", path, err)
	}
	defer db.Close()
	var keys []string
	it := db.Iter()
	for it.Next() {
		keys = append(keys, string(it.Key()))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read map %s: %w", path, err)
	}
	return keys, nil
}

// writeAtomic creates path's new content through write, then renames it into
// place. On any error the old file is left untouched and the temporary file
// removed.
func writeAtomic(path string, mode os.FileMode, write func(*os.File) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = write(f); err != nil {
		return err // an *os.PathError that names the temporary file
	}
	// CreateTemp makes the file 0600; postmap -q and proxymap read the map
	// as non-root users.
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename itself durable; without this a crash can bring back
	// the old map, or none.
	d, err := os.Open(dir)
	if err != nil {
		return nil // the new file is in place; only durability is unknown
	}
	defer d.Close()
	if serr := d.Sync(); serr != nil && !errors.Is(serr, os.ErrInvalid) {
		return fmt.Errorf("fsync directory %s: %w", dir, serr)
	}
	return nil
}

// RemoveStaleTemps deletes temporary files an earlier crash left next to
// path, and returns how many it removed.
func RemoveStaleTemps(path string) (int, error) {
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("clean %s: %w", dir, err)
	}
	prefix := tempPrefix + filepath.Base(path) + "-"
	n := 0
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), prefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
				n++
			}
		}
	}
	return n, nil
}

// bufferedFile adds buffering to a temp file for line-oriented writers.
func bufferedFile(f *os.File, fill func(w *bufio.Writer) error) error {
	w := bufio.NewWriterSize(f, 64*1024)
	if err := fill(w); err != nil {
		return err
	}
	return w.Flush()
}
