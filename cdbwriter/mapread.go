package cdbwriter

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
)

// mapDamage says the existing map is not a well-formed cdb after some
// point; the keys before it were read.
type mapDamage struct {
	Path   string
	Offset int64
	Reason string
}

func (d *mapDamage) Error() string {
	return fmt.Sprintf("map %s is not a readable cdb from byte %d: %s", d.Path, d.Offset, d.Reason)
}

// mapKeyAddr reads a map record as a grant: the key one address written
// exactly as Postfix looks a client up (no network, no host name, no
// IPv4-mapped or non-canonical form), the value an access(5) OK. A
// trailing NUL, which some writers add, is ignored.
func mapKeyAddr(key, value []byte) (netip.Addr, bool) {
	key = bytes.TrimSuffix(key, []byte{0})
	value = bytes.TrimSuffix(value, []byte{0})
	if !isOK(value) {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(string(key))
	if err != nil || a.Zone() != "" || Key(a) != string(key) {
		return netip.Addr{}, false
	}
	return a, true
}

// isOK: access(5) reads OK, in any case, and an all-numerical result as
// permit; anything else (REJECT, DUNNO, a restriction) is not a grant.
func isOK(v []byte) bool {
	if bytes.EqualFold(v, []byte(MapValue)) {
		return true
	}
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// maxMapKey bounds the key and value kept from a map record; longer ones
// are not an address or OK, and are skipped unread.
const maxMapKey = 256

// eachMapRecord calls f for every record of the cdb in file f, reading it
// front to back in constant memory: the records lie between the header and
// the first hash table. It checks every length against the file's size,
// so no file makes it allocate or loop beyond it, and returns a
// *mapDamage at the first record that does not fit.
func eachMapRecord(f *os.File, each func(key, value []byte)) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read map %s: %w", f.Name(), err)
	}
	size := fi.Size()
	damage := func(off int64, reason string) error {
		return &mapDamage{Path: f.Name(), Offset: off, Reason: reason}
	}
	if size == 0 {
		return damage(0, "empty file")
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 64<<10)
	var header [cdbHeaderSize]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return damage(0, "shorter than a cdb header")
	}
	end := size
	for t := 0; t < 256; t++ {
		pos := int64(binary.LittleEndian.Uint32(header[t*8:]))
		slots := int64(binary.LittleEndian.Uint32(header[t*8+4:]))
		if pos < cdbHeaderSize || pos+8*slots > size {
			return damage(int64(t*8), "hash table outside the file")
		}
		end = min(end, pos)
	}
	var buf [2 * maxMapKey]byte
	for off := int64(cdbHeaderSize); off < end; {
		var lens [8]byte
		if off+8 > end {
			return damage(off, "record cut short")
		}
		if _, err := io.ReadFull(r, lens[:]); err != nil {
			return damage(off, "record cut short")
		}
		klen := int64(binary.LittleEndian.Uint32(lens[:4]))
		vlen := int64(binary.LittleEndian.Uint32(lens[4:]))
		if off+8+klen+vlen > end {
			return damage(off, "record runs past the records")
		}
		if klen <= maxMapKey && vlen <= maxMapKey {
			rec := buf[:klen+vlen]
			if _, err := io.ReadFull(r, rec); err != nil {
				return damage(off, "record cut short")
			}
			each(rec[:klen], rec[klen:])
		} else {
			if _, err := r.Discard(int(klen + vlen)); err != nil {
				return damage(off, "record cut short")
			}
			each(nil, nil) // counted as not an address
		}
		off += 8 + klen + vlen
	}
	return nil
}
