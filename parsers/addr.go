package parsers

import (
	"net/netip"
	"strings"
)

// parseAddr turns an address as a daemon logs it ("192.0.2.10",
// "[::ffff:192.0.2.10]", "2001:DB8::5") into a grantable address, or returns
// an *AddrError saying why it can't be granted. The result is unmapped, so
// its String() is exactly the key Postfix looks up: smtpd prints the client
// with glibc inet_ntop and rewrites ::ffff:a.b.c.d to a.b.c.d, and for every
// IPv6 address outside ::/96 that gives the same text as netip's RFC 5952
// form (checked on 200,000 addresses). Inside ::/96 (IPv4-compatible, which
// inet_ntop prints as ::a.b.c.d) nothing is grantable, so no key can differ.
//
// Loopback and private addresses are grantable on purpose: tests use
// 127.0.0.x clients, and operators exclude their own networks with -exclude
// or Postfix's mynetworks. So are the documentation ranges (192.0.2.0/24,
// 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32, 3fff::/20): no real client
// has one, and the test suites and examples are written in them.
func parseAddr(s string) (netip.Addr, error) {
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

// neverClient lists the blocks of the IANA IPv4 and IPv6 Special-Purpose
// Address Registries (RFC 6890 and updates) that can never be the client
// of a TCP connection an SMTP server accepted: blocks the registry marks
// Source=False, and blocks no reply can reach, so no handshake completes.
// Each entry says why; an address in none of them may be granted.
var neverClient = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network" address (0.0.0.0/8, RFC 791)`},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local address (169.254.0.0/16, RFC 3927)"},
	{netip.MustParsePrefix("192.0.0.8/32"), "IPv4 dummy address (192.0.0.8, RFC 7600)"},
	{netip.MustParsePrefix("192.0.0.170/31"), "NAT64/DNS64 discovery address (192.0.0.170/31, RFC 7050)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast address (224.0.0.0/4)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved address (240.0.0.0/4, RFC 1112)"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible address (::/96, deprecated by RFC 4291; Postfix prints it as ::a.b.c.d)"},
	{netip.MustParsePrefix("100::/64"), "discard-only address (100::/64, RFC 6666)"},
	{netip.MustParsePrefix("2001:10::/28"), "ORCHID address (2001:10::/28, deprecated, RFC 4843)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local address (fe80::/10)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast address (ff00::/8)"},
}

// 192.0.0.0/24 and 2001::/23 are Source=False except for the blocks the
// registry lists inside them.
var (
	ietfV4    = netip.MustParsePrefix("192.0.0.0/24")
	ietfV4Use = []netip.Prefix{
		netip.MustParsePrefix("192.0.0.0/29"),  // DS-Lite B4 (RFC 7335)
		netip.MustParsePrefix("192.0.0.9/32"),  // PCP anycast (RFC 7723)
		netip.MustParsePrefix("192.0.0.10/32"), // TURN anycast (RFC 8155)
	}
	ietfV6    = netip.MustParsePrefix("2001::/23")
	ietfV6Use = []netip.Prefix{
		netip.MustParsePrefix("2001::/32"),       // Teredo (RFC 4380), checked below
		netip.MustParsePrefix("2001:1::/48"),     // PCP, TURN, DNS-SD anycast
		netip.MustParsePrefix("2001:2::/48"),     // benchmarking (RFC 5180)
		netip.MustParsePrefix("2001:3::/32"),     // AMT (RFC 7450)
		netip.MustParsePrefix("2001:4:112::/48"), // AS112-v6 (RFC 7535)
		netip.MustParsePrefix("2001:20::/28"),    // ORCHIDv2 (RFC 7343)
		netip.MustParsePrefix("2001:30::/28"),    // drone remote ID (RFC 9374)
	}
	limitedBcast = netip.MustParseAddr("255.255.255.255")
	nat64WKP     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour    = netip.MustParsePrefix("2002::/16")
	teredo       = netip.MustParsePrefix("2001::/32")
	sharedV4     = netip.MustParsePrefix("100.64.0.0/10")
)

// Grantable reports whether a may be granted, by the same rules as
// parseAddr: for addresses that come from elsewhere than a log line (an
// existing map carried over at start, an old state file).
func Grantable(a netip.Addr) bool {
	return a.IsValid() && a.Zone() == "" && ungrantable(a.Unmap()) == ""
}

func ungrantable(a netip.Addr) string {
	if a.IsUnspecified() {
		return "unspecified address"
	}
	if a == limitedBcast {
		return "broadcast address (255.255.255.255)"
	}
	if a == netip.IPv6Loopback() {
		// Inside ::/96, and its key "::1" a cut-back of "::1:x", but
		// loopback is grantable like 127.0.0.1 (see parseAddr).
		return ""
	}
	for _, n := range neverClient {
		if n.prefix.Contains(a) {
			return n.reason
		}
	}
	if ietfV4.Contains(a) && !containedIn(a, ietfV4Use) {
		return "IETF protocol assignment (192.0.0.0/24) that is never a source address"
	}
	if ietfV6.Contains(a) && !containedIn(a, ietfV6Use) {
		return "IETF protocol assignment (2001::/23) that is never a source address"
	}
	if widensPastItsNetwork(a) {
		return "IPv6 address whose Postfix key would also match clients outside its /64 (check_client_access cuts IPv6 keys back at ':')"
	}
	// Transition addresses carry an IPv4 address that must be global
	// (RFC 3056 §2, RFC 6052 §3.1, RFC 4380 §4): one that embeds a private,
	// loopback or unusable address was made up, not routed.
	b := a.As16()
	switch {
	case nat64WKP.Contains(a):
		if r := embeddedReason(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})); r != "" {
			return "NAT64 address (64:ff9b::/96) embedding a " + r
		}
	case sixToFour.Contains(a):
		if r := embeddedReason(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})); r != "" {
			return "6to4 address (2002::/16) embedding a " + r
		}
	case teredo.Contains(a):
		server := netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]})
		client := netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
		if r := embeddedReason(server); r != "" {
			return "Teredo address (2001::/32) whose server is a " + r
		}
		if r := embeddedReason(client); r != "" {
			return "Teredo address (2001::/32) whose client is a " + r
		}
	}
	return ""
}

// widensPastItsNetwork reports whether a's map key would also answer for
// clients outside a's own /64. For a cdb (as for hash and lmdb) table,
// check_client_access looks a client address up whole and then cut back
// one ':' group at a time from the right (smtpd_check.c, split_at_right),
// so the key "P::S" also matches every client printed "P::S:X…": one with
// fewer zero groups in its "::". Such a client shares the key's /64 unless
// the key has at most one group before its "::", at least three zero
// groups in it and a group after it: the key "2400::5" answers for
// 2400:0:0:5:x:y:z:w, in another /64. A key of eight groups, or ending in
// "::", is never a cut-back of another address. The "::" is where
// inet_ntop (which smtpd uses) and RFC 5952 both put it: the longest run
// of two or more zero groups, the first of equal runs.
func widensPastItsNetwork(a netip.Addr) bool {
	if !a.Is6() || a.Is4In6() {
		return false
	}
	b := a.As16()
	zero := func(i int) bool { return b[2*i]|b[2*i+1] == 0 }
	start, run := -1, 0
	for i := 0; i < 8; {
		if !zero(i) {
			i++
			continue
		}
		j := i
		for j < 8 && zero(j) {
			j++
		}
		if j-i > run {
			start, run = i, j-i
		}
		i = j
	}
	return run >= 3 && start <= 1 && start+run < 8
}

// embeddedReason says why v4 cannot be the public IPv4 address a
// transition mechanism embeds, or returns "".
func embeddedReason(v4 netip.Addr) string {
	if r := ungrantable(v4); r != "" {
		return r
	}
	switch {
	case v4.IsLoopback():
		return "loopback address"
	case v4.IsPrivate(), sharedV4.Contains(v4):
		return "private address"
	}
	return ""
}

func containedIn(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
