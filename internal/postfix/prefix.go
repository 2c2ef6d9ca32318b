package postfix

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParsePrefixes reads "192.0.2.0/24, 2001:db8::/32, 198.51.100.7": a bare
// address means just that host. Postfix-style "[::1]/128" is accepted too,
// so a list copied from mynetworks reads the same.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range listFields(list) {
		p, err := ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// listFields splits a list as Postfix does: commas and white space
// separate.
func listFields(list string) []string {
	return strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
}

// ParsePrefix reads one CIDR or address (a host prefix), masked, with
// IPv4-mapped IPv6 forms unmapped.
func ParsePrefix(s string) (netip.Prefix, error) {
	clean := s
	if strings.HasPrefix(clean, "[") {
		if end := strings.IndexByte(clean, ']'); end > 0 {
			clean = clean[1:end] + clean[end+1:]
		}
	}
	if strings.Contains(clean, "/") {
		p, err := netip.ParsePrefix(clean)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			// [::ffff:127.0.0.0]/104 means 127.0.0.0/8; addresses are
			// unmapped before they are compared.
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(clean)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// JoinPrefixes is the comma-separated form of ps, for log lines.
func JoinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
