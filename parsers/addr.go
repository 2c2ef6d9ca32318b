package parsers

import (
	"net/netip"
	"strings"
)

// ParseAddr turns an address as a daemon logs it ("192.0.2.10",
// "[::ffff:192.0.2.10]", "2001:DB8::5") into a grantable address, or returns
// an *AddrError saying why it can't be granted. The result is unmapped, so
// its String() is exactly the key Postfix looks up.
//
// Loopback and private addresses are grantable on purpose: tests use
// 127.0.0.x clients, and operators exclude their own networks with -exclude
// or Postfix's mynetworks.
func ParseAddr(s string) (netip.Addr, error) {
	raw := s
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	if strings.ContainsRune(s, '%') {
		// A zone names an interface of the logging host, which means nothing
		// to Postfix and only occurs with link-local addresses anyway.
		return netip.Addr{}, &AddrError{Addr: raw, Reason: "has an IPv6 zone"}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, &AddrError{Addr: raw, Reason: "not an IP address"}
	}
	a = a.Unmap()
	if reason := ungrantable(a); reason != "" {
		return netip.Addr{}, &AddrError{Addr: raw, Reason: reason}
	}
	return a, nil
}

var (
	thisNetwork  = netip.MustParsePrefix("0.0.0.0/8")
	reservedV4   = netip.MustParsePrefix("240.0.0.0/4")
	limitedBcast = netip.MustParseAddr("255.255.255.255")
)

func ungrantable(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return "unspecified address"
	case a == limitedBcast:
		return "broadcast address"
	case a.IsMulticast():
		return "multicast address"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "link-local address"
	case a.Is4() && thisNetwork.Contains(a):
		return "\"this network\" address (0.0.0.0/8)"
	case a.Is4() && reservedV4.Contains(a):
		return "reserved address (240.0.0.0/4)"
	}
	return ""
}
