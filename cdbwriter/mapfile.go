package cdbwriter

import (
	"fmt"
	"net/netip"
	"os"

	"github.com/colinmarc/cdb"

	"github.com/relaygate/relaygate/internal/grants"
)

// MapValue is the right-hand side of every key. Postfix's access(5) reads
// "OK" as permit.
const MapValue = "OK"

// Key is the form Postfix looks a client address up in: IPv4 dotted quad,
// IPv6 RFC 5952 (lower case, "::"-compressed), IPv4-mapped IPv6 unmapped.
func Key(a netip.Addr) string { return a.Unmap().String() }

// WriteMap atomically replaces the cdb at path with one key per grant. Postfix
// never sees a partial file: the map is written to a temporary file in the
// same directory, synced, renamed over path, and the directory synced. An
// in-place rewrite would corrupt the file under every smtpd that has it
// mapped.
func WriteMap(path string, gs []grants.Grant) error {
	return writeMap(path, len(gs), func(m *cdbMaker) {
		for _, g := range gs {
			m.putAddr(g.Addr)
		}
	})
}

// writeTableMap is WriteMap for every grant in t, without copying them out.
func writeTableMap(path string, t *grants.Table) error {
	return writeMap(path, t.Len(), func(m *cdbMaker) { t.EachAddr(m.putAddr) })
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
