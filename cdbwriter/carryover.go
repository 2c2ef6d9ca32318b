package cdbwriter

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"
)

// carriedDaemon names, in the state file and relaygate list, a grant that
// was carried over from the map rather than made by a login.
const carriedDaemon = "carried-over"

// CarryOver counts what a start made of the addresses in the existing map
// that the state file did not account for.
type CarryOver struct {
	Carried     int // granted for one grace period from the start
	NotAddress  int // keys that are not one address in Postfix's lookup form, or values that are not OK
	Ungrantable int // addresses that can never be a client (Config.Grantable)
	Excluded    int // addresses in an excluded network
	Full        int // left out because the table reached -max-entries
}

func (c CarryOver) skipped() int { return c.NotAddress + c.Ungrantable + c.Excluded + c.Full }

// MapDamage says the existing map is not a well-formed cdb after some
// point; the keys before it were read.
type MapDamage struct {
	Path   string
	Offset int64
	Reason string
}

func (d *MapDamage) Error() string {
	return fmt.Sprintf("map %s is not a readable cdb from byte %d: %s", d.Path, d.Offset, d.Reason)
}

// carryOver grants, expiring one grace period from now, every address in
// the map f (already open, a regular file) the state file does not account
// for (accounted: it has a line for it): what a damaged or missing state
// file lost, or what another tool granted before relaygate took over its
// map. So a restart never publishes a map
// without an address that had not expired. The state's own grants take
// precedence and are never evicted for a carried one.
func (s *Service) carryOver(f *os.File, accounted func(netip.Addr) bool, now time.Time) (CarryOver, error) {
	var c CarryOver
	room := s.table.maxEntries - s.table.Len()
	var carry []Grant
	expires := now.Add(s.table.Grace())
	// A cdb may hold a key twice and Postfix's lookup returns its first
	// record: an address first listed with anything but OK was refused,
	// whatever a later record says. Only such addresses are remembered, so
	// relaygate's own maps (every value OK) cost nothing here.
	var refused map[netip.Addr]struct{}
	err := eachMapRecord(f, func(key, value []byte) {
		a, ok := mapKeyAddr(key, value)
		if !ok {
			if a, isKey := mapKeyAddr(key, []byte(MapValue)); isKey {
				if refused == nil {
					refused = make(map[netip.Addr]struct{})
				}
				refused[a] = struct{}{}
			}
		} else if _, no := refused[a]; no {
			ok = false
		}
		switch {
		case !ok:
			c.NotAddress++
		case accounted(a):
		case !s.cfg.Grantable(a):
			c.Ungrantable++
		case s.table.Excluded(a):
			c.Excluded++
		case len(carry) >= room:
			c.Full++
		default:
			carry = append(carry, Grant{Addr: a, Expires: expires, Daemon: carriedDaemon})
		}
	})
	// Restore skips an address already in the table; a map has no
	// duplicate keys unless damaged, and then Restore drops the copy.
	c.Carried = s.table.Restore(carry, now)
	return c, err
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

var (
	thisNetwork4 = netip.MustParsePrefix("0.0.0.0/8")
	reserved4    = netip.MustParsePrefix("240.0.0.0/4")
)

// defaultGrantable refuses what can never be a client, for a Service
// whose caller gives no Config.Grantable (relaygate gives the parsers'
// own rule).
func defaultGrantable(a netip.Addr) bool {
	return !(a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		(a.Is4() && (thisNetwork4.Contains(a) || reserved4.Contains(a))))
}

// maxMapKey bounds the key and value kept from a map record; longer ones
// are not an address or OK, and are skipped unread.
const maxMapKey = 256

// eachMapRecord calls f for every record of the cdb in file f, reading it
// front to back in constant memory: the records lie between the header and
// the first hash table. It checks every length against the file's size,
// so no file makes it allocate or loop beyond it, and returns a
// *MapDamage at the first record that does not fit.
func eachMapRecord(f *os.File, each func(key, value []byte)) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read map %s: %w", f.Name(), err)
	}
	size := fi.Size()
	damage := func(off int64, reason string) error {
		return &MapDamage{Path: f.Name(), Offset: off, Reason: reason}
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
