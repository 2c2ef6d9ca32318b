package outputs

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/relaygate/relaygate/internal/postfix"
)

func checkTCPRules(c Config) []postfix.Finding {
	var out []postfix.Finding
	grant, err := c.grantData()
	if err != nil {
		return []postfix.Finding{{ID: "tcprules-grant", Problem: true, Msg: "-tcprules-grant: " + err.Error(),
			Fix: `give tcprules instructions, such as allow,RELAYCLIENT=""`}}
	}
	if !bytes.Contains(grant, []byte("+RELAYCLIENT=")) {
		out = append(out, postfix.Finding{ID: "tcprules-grant", Problem: true,
			Msg: "-tcprules-grant does not set RELAYCLIENT: qmail-smtpd will not let granted clients relay",
			Fix: `add ,RELAYCLIENT="" to -tcprules-grant (or leave it at its default ` + DefaultTCPRulesGrant + `)`})
	}
	if c.TCPRulesStatic == "" {
		return append(out, postfix.Finding{ID: "tcprules-static", Note: true,
			Msg: "no -tcprules-static: the cdb holds the grants alone; list the site's own rules (127.:allow,RELAYCLIENT=\"\" for local senders) in a file and name it there"})
	}
	b, err := os.ReadFile(c.TCPRulesStatic)
	if err != nil {
		return append(out, postfix.Finding{ID: "tcprules-static", Problem: true, Msg: err.Error(),
			Fix: "create the static rules file, or correct -tcprules-static"})
	}
	if f, ok := checkWritableByOthers(c.TCPRulesStatic); !ok {
		out = append(out, f)
	}
	rules, err := parseTCPRules(b)
	if err != nil {
		return append(out, postfix.Finding{ID: "tcprules-static", Problem: true, Msg: c.TCPRulesStatic + ": " + err.Error(),
			Fix: "write the line as tcprules(1) reads it: address:allow or address:deny, then ,NAME=\"value\" items, no spaces"})
	}
	hosts := 0
	for _, r := range rules {
		if len(r.key) > 1 && r.key[0] == '=' {
			hosts++
		}
		if !relays(r.data) {
			continue
		}
		if len(r.key) == 0 || string(r.key) == "=" {
			out = append(out, postfix.Finding{ID: "tcprules-open-relay", Problem: true,
				Msg: fmt.Sprintf("%s: the rule %q sets RELAYCLIENT for every client: an open relay, whatever relaygate grants", c.TCPRulesStatic, string(r.key)+":…"),
				Fix: `make the catch-all rule :allow (without RELAYCLIENT)`})
		} else if wideIPv6Prefix(r.key) {
			out = append(out, postfix.Finding{ID: "tcprules-open-relay", Problem: true,
				Msg: fmt.Sprintf("%s: the rule %q sets RELAYCLIENT for every IPv6 client whose address starts so (a /32 or more): an open relay for them", c.TCPRulesStatic, string(r.key)+":…"),
				Fix: "name your own networks in full (at least three groups), or drop RELAYCLIENT from the rule"})
		}
	}
	if n, keys := publicRelayV4(rules); n >= 1<<24 {
		out = append(out, postfix.Finding{ID: "tcprules-open-relay", Problem: true,
			Msg: fmt.Sprintf("%s: the rules %s set RELAYCLIENT for %d public IPv4 addresses (%.1f%% of all IPv4 addresses; as much as a whole /8 or more): an open relay, whatever relaygate grants",
				c.TCPRulesStatic, strings.Join(keys, ", "), n, 100*float64(n)/(1<<32)),
			Fix: "let only your own networks relay (127.:allow,RELAYCLIENT=\"\" and your LAN), not ranges such as 1-255."})
	}
	if hosts > 0 {
		out = append(out, postfix.Finding{ID: "tcprules-hosts", Note: true,
			Msg: fmt.Sprintf("%s: %d rules on host names (=…): tcpserver looks a client's exact address up before them, so a granted client's record wins over them (relaygate merges only the address rules into a grant)", c.TCPRulesStatic, hosts)})
	}
	return append(out, postfix.Finding{ID: "tcprules-static", Msg: fmt.Sprintf("%s: %d rules; each grant gets the rule tcpserver would apply to its address (none if it denies the address or its network) plus -tcprules-grant's variables", c.TCPRulesStatic, len(rules))})
}

// relays says whether rule data lets a client relay: allow, with
// RELAYCLIENT set.
func relays(data []byte) bool {
	return !bytes.HasPrefix(data, []byte("D\x00")) &&
		(bytes.HasPrefix(data, []byte("+RELAYCLIENT=")) || bytes.Contains(data, []byte("\x00+RELAYCLIENT=")))
}

// wideIPv6Prefix says whether key is a rule tcpserver's IPv6 build reads
// as a prefix (it ends in ":") naming at most two groups: every client in
// a /32 or more whose address starts so.
func wideIPv6Prefix(key []byte) bool {
	if len(key) == 0 || key[len(key)-1] != ':' || bytes.IndexByte(key, '.') >= 0 || key[0] == '=' || bytes.IndexByte(key, '@') >= 0 {
		return false
	}
	groups := 0
	for _, g := range bytes.Split(key, []byte{':'}) {
		if len(g) > 0 {
			groups++
		}
	}
	return groups <= 2
}

// notPublicV4 are the IPv4 blocks no Internet client connects from
// (private, loopback, link-local, shared, documentation, benchmarking,
// multicast, reserved); disjoint.
var notPublicV4 = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"), netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("224.0.0.0/3"),
}

// publicRelayV4 counts the public IPv4 addresses tcpserver would set
// RELAYCLIENT for under rules alone (their exact address, else the longest
// prefix ending in ".", else the catch-all), and names up to three of the
// rules that do it.
func publicRelayV4(rules []tcpRule) (uint64, []string) {
	first := map[string][]byte{}
	inner := map[string]bool{} // prefixes "a." "a.b." "a.b.c." below which some key lies
	for _, r := range rules {
		k := string(r.key)
		if _, dup := first[k]; !dup {
			first[k] = r.data
		}
		for i := 0; i < len(k); i++ {
			if k[i] == '.' && i+1 < len(k) {
				inner[k[:i+1]] = true
			}
		}
	}
	var (
		total uint64
		keys  []string
	)
	add := func(key string, block netip.Prefix) {
		n := uint64(1) << (32 - block.Bits())
		for _, p := range notPublicV4 {
			switch {
			case p.Bits() >= block.Bits() && block.Contains(p.Addr()):
				n -= uint64(1) << (32 - p.Bits())
			case p.Bits() < block.Bits() && p.Contains(block.Addr()):
				n = 0
			}
		}
		if n > 0 {
			total += n
			if len(keys) < 3 && !slices.Contains(keys, key+":…") {
				keys = append(keys, key+":…")
			}
		}
	}
	// walk visits the 256 blocks under prefix (depth octets given, in
	// ip), the rule inherited being relay (from key).
	var walk func(prefix string, ip [4]byte, depth int, relay bool, key string)
	walk = func(prefix string, ip [4]byte, depth int, relay bool, key string) {
		for x := range 256 {
			ip[depth] = byte(x)
			child := prefix + strconv.Itoa(x)
			r, k := relay, key
			if depth == 3 {
				if d, ok := first[child]; ok {
					r, k = relays(d), child
				}
				if r {
					add(k, netip.PrefixFrom(netip.AddrFrom4(ip), 32))
				}
				continue
			}
			if d, ok := first[child+"."]; ok {
				r, k = relays(d), child+"."
			}
			if inner[child+"."] {
				walk(child+".", ip, depth+1, r, k)
			} else if r {
				add(k, netip.PrefixFrom(netip.AddrFrom4(ip), 8*(depth+1)))
			}
		}
	}
	d, ok := first[""]
	walk("", [4]byte{}, 0, ok && relays(d), "")
	return total, keys
}

// checkWritableByOthers flags a file that users other than its owner (and
// root) may change, or replace through its directory: anyone who can
// write the static rules can make any client a relay.
func checkWritableByOthers(path string) (postfix.Finding, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return postfix.Finding{}, true
	}
	if fi.Mode().Perm()&0o002 != 0 {
		return postfix.Finding{ID: "tcprules-static-mode", Problem: true,
			Msg: fmt.Sprintf("%s is writable by every user (%v): anyone on the host can give any client RELAYCLIENT", path, fi.Mode().Perm()),
			Fix: "chmod o-w " + path}, false
	}
	dir := filepath.Dir(path)
	if di, err := os.Stat(dir); err == nil && di.Mode().Perm()&0o002 != 0 && di.Mode()&os.ModeSticky == 0 {
		return postfix.Finding{ID: "tcprules-static-mode", Problem: true,
			Msg: fmt.Sprintf("%s is in %s, which every user may write: anyone on the host can replace it and give any client RELAYCLIENT", path, dir),
			Fix: "keep the static rules in a directory only root writes, such as /etc"}, false
	}
	return postfix.Finding{}, true
}
