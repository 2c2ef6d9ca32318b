package outputs

import (
	"net/netip"
	"strconv"
)

// appendTCPKey appends the form tcpserver looks a client up in:
// $TCPREMOTEIP. IPv4 is the dotted quad. IPv6 (only the IPv6 build of
// tcpserver, Debian's ucspi-tcp-ipv6, sees it) is written by that
// build's ip6_fmt: lower-case hex without leading zeros, the first
// longest run of zero groups as "::" even when the run is one group long
// (RFC 5952, and Go, leave a single zero group alone).
func appendTCPKey(b []byte, a netip.Addr) []byte {
	a = a.Unmap()
	if a.Is4() {
		return a.AppendTo(b)
	}
	ip := a.As16()
	group := func(i int) uint16 { return uint16(ip[2*i])<<8 | uint16(ip[2*i+1]) }
	best, bestLen := -1, 0
	for i := 0; i < 8; {
		if group(i) != 0 {
			i++
			continue
		}
		j := i
		for j < 8 && group(j) == 0 {
			j++
		}
		if j-i > bestLen {
			best, bestLen = i, j-i
		}
		i = j
	}
	for i := 0; i < 8; i++ {
		if i == best {
			if i == 0 {
				b = append(b, ':')
			}
			b = append(b, ':')
			i += bestLen - 1
			continue
		}
		b = strconv.AppendUint(b, uint64(group(i)), 16)
		if i < 7 {
			b = append(b, ':')
		}
	}
	return b
}

// tcpKeyIsPrefix says whether tcpserver would also read key as a prefix
// of other clients' addresses: it ends in "." or ":" (of addresses, only
// IPv6 ones ending in a "::" do).
func tcpKeyIsPrefix(key []byte) bool {
	return len(key) > 0 && (key[len(key)-1] == '.' || key[len(key)-1] == ':')
}
