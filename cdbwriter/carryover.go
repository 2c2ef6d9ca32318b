package cdbwriter

import (
	"net/netip"
	"os"
	"time"

	"github.com/relaygate/relaygate/internal/grants"
)

// carriedDaemon names, in the state file and relaygate list, a grant that
// was carried over from the map rather than made by a login.
const carriedDaemon = "carried-over"

// carryCounts counts what a start made of the addresses in the existing map
// that the state file did not account for.
type carryCounts struct {
	carried     int // granted for one grace period from the start
	notAddress  int // keys that are not one address in Postfix's lookup form, or values that are not OK
	ungrantable int // addresses that can never be a client (Config.Grantable)
	excluded    int // addresses in an excluded network
	full        int // left out because the table reached -max-entries
}

func (c carryCounts) skipped() int { return c.notAddress + c.ungrantable + c.excluded + c.full }

// carryOver grants, expiring one grace period from now, every address in
// the map f (already open, a regular file) the state file does not account
// for (accounted: it has a line for it): what a damaged or missing state
// file lost, or what another tool granted before relaygate took over its
// map. So a restart never publishes a map
// without an address that had not expired. The state's own grants take
// precedence and are never evicted for a carried one.
func (s *Service) carryOver(f *os.File, accounted func(netip.Addr) bool, now time.Time) (carryCounts, error) {
	var c carryCounts
	room := s.table.MaxEntries() - s.table.Len()
	var carry []grants.Grant
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
			c.notAddress++
		case accounted(a):
		case !s.cfg.Grantable(a):
			c.ungrantable++
		case s.table.Excluded(a):
			c.excluded++
		case len(carry) >= room:
			c.full++
		default:
			carry = append(carry, grants.Grant{Addr: a, Expires: expires, Daemon: carriedDaemon})
		}
	})
	// Restore skips an address already in the table; a map has no
	// duplicate keys unless damaged, and then Restore drops the copy.
	c.carried = s.table.Restore(carry, now)
	return c, err
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
