package outputs

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// courierRule is one record of Courier's access file: the key couriertcpd
// looks a client up by (an address or a prefix of one, "*" for everyone
// else) and the instructions ("allow,VAR=…", "deny").
type courierRule struct {
	key, value string
	line       int // in the text as read (1-based), for errors
}

// courierCIDRLine is the line makedat -cidr (what makesmtpaccess runs)
// hands to Perl's Net::CIDR: a network or a range, blanks, the rest. It
// is matched against the line with its newline, as Perl's <> reads it:
// the blanks may be that newline alone ("10.0.0.0/8" is the key 10 with
// the value 1, measured with makedat -cidr).
var courierCIDRLine = regexp.MustCompile(`^([a-fA-F0-9:.]+[-/][a-fA-F0-9:.]+)[\t\n\v\f\r ]+([^\n]*)\n?$`)

// maxCourierExpansion bounds the keys one CIDR line may expand to (a
// /17 in IPv6 is 32,768 of them): a typo must not build a huge file.
// maxCourierKeys bounds the keys of all the rules, so many such lines
// cannot either (each costs memory here and a record in every write).
const (
	maxCourierExpansion = 1 << 16
	maxCourierKeys      = 1 << 20
)

// courierCString is s as makedatprog's C string functions see it: a NUL
// ends it (measured: "192.0.2.7<NUL><TAB>deny" is the key 192.0.2.7 with
// the value 1, and ".<NUL>x" ends the input).
func courierCString(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// parseCourierAccess reads the site's access rules as makesmtpaccess
// compiles them (makedat -cidr, then makedatprog): lines up to a line
// holding only "." (the rest is ignored, as makedatprog stops there);
// empty lines and lines starting with # skipped; a line whose first
// field is a network (10.0.0.0/8, fd00::/16) or a range (a-b) expanded
// to the prefixes couriertcpd looks up, as Net::CIDR::cidr2octets does;
// every other line split at its first TAB (blanks are part of the key),
// a line without one, or with nothing after it, getting the value "1".
// A NUL ends a line (makedatprog reads C strings), after the CIDR
// expansion (Perl's) has seen it whole. Keys must be unique: makedat
// refuses a duplicate, and so does this. So the rules returned, written
// back as KEY<TAB>VALUE lines, are exactly the records makedat stores.
func parseCourierAccess(b []byte) ([]courierRule, error) {
	var rules []courierRule
	seen := map[string]int{}
	add := func(key, value string, line int) error {
		if prev, dup := seen[key]; dup {
			return fmt.Errorf("line %d: the key %q is also on line %d (makedat refuses duplicate keys)", line, key, prev)
		}
		if len(rules) >= maxCourierKeys {
			return fmt.Errorf("line %d: more than %d keys (networks are expanded to the prefixes couriertcpd looks up)", line, maxCourierKeys)
		}
		if value == "" {
			value = "1"
		}
		seen[key] = line
		rules = append(rules, courierRule{key: key, value: value, line: line})
		return nil
	}
	ended := false // a "." line ends makedatprog's input, not Perl's
	for n, l := range bytes.Split(b, []byte{'\n'}) {
		line := string(l)
		if m := courierCIDRLine.FindStringSubmatch(line + "\n"); m != nil && ended {
			// makedat -cidr's Perl step still expands it, and fails on
			// what it cannot; the records it writes are never read.
			if _, err := courierNetworks(m[1]); err != nil {
				return nil, fmt.Errorf("line %d: %q: %w", n+1, m[1], err)
			}
			continue
		} else if m != nil {
			keys, err := courierExpand(m[1])
			if err != nil {
				return nil, fmt.Errorf("line %d: %q: %w", n+1, m[1], err)
			}
			for _, k := range keys {
				if err := add(k, courierCString(m[2]), n+1); err != nil {
					return nil, err
				}
			}
			continue
		}
		line = courierCString(line)
		if line == "." || ended {
			ended = true
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		key, value, _ := strings.Cut(line, "\t")
		if key == "" {
			continue // makedatprog skips a record without a key
		}
		if err := add(key, value, n+1); err != nil {
			return nil, err
		}
	}
	return rules, nil
}

// courierExpand is the keys makedat -cidr writes for a network
// ("10.0.0.0/8") or a range ("10.1.2.3-10.1.2.5"): the range as whole
// networks, each widened to the octets (IPv4) or 16-bit groups (IPv6)
// couriertcpd cuts addresses at, IPv6 ones written ":hhhh:hhhh…".
func courierExpand(s string) ([]string, error) {
	prefixes, err := courierNetworks(s)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, p := range prefixes {
		bits, n := courierWidened(p)
		// The network is masked and n fits in the bits from its length
		// to bits (fewer than a step): i goes in the last byte (IPv6: two).
		b, last := p.Addr().AsSlice(), bits/8-1
		for i := range n {
			k := slices.Clone(b)
			k[last] |= byte(i)
			if p.Addr().Is6() {
				k[last-1] |= byte(i >> 8)
			}
			keys = append(keys, courierPrefixKey(k, bits))
		}
	}
	return keys, nil
}

// courierNetworks parses what courierExpand expands, refusing what
// makedat -cidr would refuse and what would expand to more than
// maxCourierExpansion keys, without expanding it.
func courierNetworks(s string) ([]netip.Prefix, error) {
	var prefixes []netip.Prefix
	if a, b, ok := strings.Cut(s, "-"); ok {
		lo, err1 := netip.ParseAddr(a)
		hi, err2 := netip.ParseAddr(b)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("not an address range: %w", err)
		}
		if lo.Is4() != hi.Is4() || hi.Less(lo) {
			return nil, errors.New("not an address range: both ends of one family, the lower first")
		}
		prefixes = rangePrefixes(lo, hi)
	} else {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("not a network: %w", err)
		}
		prefixes = []netip.Prefix{p.Masked()}
	}
	keys := 0
	for _, p := range prefixes {
		if p.Bits() == 0 {
			return nil, errors.New("a network of every address: write the key * instead")
		}
		_, n := courierWidened(p)
		if keys+n > maxCourierExpansion {
			return nil, fmt.Errorf("expands to more than %d keys", maxCourierExpansion)
		}
		keys += n
	}
	return prefixes, nil
}

// courierWidened is the length p is widened to (a multiple of 8 for
// IPv4, of 16 for IPv6: where couriertcpd cuts addresses) and the number
// of keys that makes.
func courierWidened(p netip.Prefix) (bits, n int) {
	step := 8
	if p.Addr().Is6() {
		step = 16
	}
	bits = (p.Bits() + step - 1) / step * step
	return bits, 1 << (bits - p.Bits())
}

// courierPrefixKey writes the first bits of an address (a multiple of 8
// for IPv4, of 16 for IPv6) as couriertcpd's key.
func courierPrefixKey(b []byte, bits int) string {
	k := make([]byte, 0, 40)
	if len(b) == 4 {
		for i := range bits / 8 {
			if i > 0 {
				k = append(k, '.')
			}
			k = strconv.AppendUint(k, uint64(b[i]), 10)
		}
		return string(k)
	}
	const hex = "0123456789abcdef"
	for i := range bits / 16 {
		x, y := b[2*i], b[2*i+1]
		k = append(k, ':', hex[x>>4], hex[x&15], hex[y>>4], hex[y&15])
	}
	return string(k)
}

// rangePrefixes is the range lo–hi as the fewest networks.
func rangePrefixes(lo, hi netip.Addr) []netip.Prefix {
	size := lo.BitLen()
	a := new(big.Int).SetBytes(lo.AsSlice())
	z := new(big.Int).SetBytes(hi.AsSlice())
	one := big.NewInt(1)
	var out []netip.Prefix
	for a.Cmp(z) <= 0 {
		// The largest block that starts at a and ends by z.
		host := 0
		for host < size && a.Bit(host) == 0 {
			end := new(big.Int).Add(a, new(big.Int).Lsh(one, uint(host+1)))
			if end.Sub(end, one).Cmp(z) > 0 {
				break
			}
			host++
		}
		addr, _ := netip.AddrFromSlice(a.FillBytes(make([]byte, size/8)))
		out = append(out, netip.PrefixFrom(addr, size-host))
		a.Add(a, new(big.Int).Lsh(one, uint(host)))
	}
	return out
}

// appendCourierKey appends the key couriertcpd looks a client up by: an
// IPv4 address (IPv4-mapped ones too) dotted, any other IPv6 address as
// ":" and eight zero-padded lower-case groups (tcpd.c allowaccess).
func appendCourierKey(b []byte, a netip.Addr) []byte {
	a = a.Unmap()
	if a.Is4() {
		return a.AppendTo(b)
	}
	const hex = "0123456789abcdef"
	s := a.As16()
	for i := 0; i < 16; i += 2 {
		b = append(b, ':', hex[s[i]>>4], hex[s[i]&15], hex[s[i+1]>>4], hex[s[i+1]&15])
	}
	return b
}

// courierLookup is the rule couriertcpd applies to a client whose key is
// key (tcpd.c doallowaccess): the key, then the key cut at its last "."
// (or, without one, its last ":") again and again, then "*". It returns
// the key found and its value, or false.
func courierLookup(rules map[string]string, key string) (string, string, bool) {
	for key != "" {
		if v, ok := rules[key]; ok {
			return key, v, true
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			i = strings.LastIndexByte(key, ':')
		}
		if i < 0 {
			break
		}
		key = key[:i]
	}
	v, ok := rules["*"]
	return "*", v, ok
}

// courierDenies says whether couriertcpd refuses a client on value: it
// compares the first four characters only.
func courierDenies(value string) bool { return strings.HasPrefix(value, "deny") }

// courierGrantValue is a granted client's value when rule (found under
// key, or !found) is the site's rule for it, or false when the grant is
// left out: the site denies the address or a network holding it. A
// catch-all "*<TAB>deny" does not keep grants out (it means: only the
// clients this file, or relaygate, vouches for). Otherwise the site's
// instructions are kept and RELAYCLIENT is added last (couriertcpd sets
// the variables in order, so it wins over a RELAYCLIENT=… of the site's),
// after closing a quote the site's value left open, which couriertcpd
// would otherwise read the addition into.
func courierGrantValue(key, rule string, found bool) (string, bool) {
	if !found || (key == "*" && courierDenies(rule)) {
		return "allow,RELAYCLIENT", true
	}
	if courierDenies(rule) {
		return "", false
	}
	var quote byte
	for i := 0; i < len(rule); i++ {
		switch c := rule[i]; {
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote != 0 && c == quote:
			quote = 0
		}
	}
	v := rule
	if quote != 0 {
		v += string(quote)
	}
	if !strings.HasSuffix(v, ",") {
		v += ","
	}
	return v + "RELAYCLIENT", true
}
