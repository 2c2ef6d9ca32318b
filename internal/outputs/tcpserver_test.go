package outputs

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/colinmarc/cdb"
)

// ip6fmt is the IPv6 build of tcpserver's $TCPREMOTEIP (ucspi-tcp-ipv6's
// ip6_fmt), written anew from its rules, independently of appendTCPKey:
// the first longest run of zero groups, even one group long, becomes
// "::"; the other groups are lower-case hex without leading zeros.
func ip6fmt(a netip.Addr) string {
	if a.Is4() || a.Is4In6() {
		return a.Unmap().String()
	}
	b := a.As16()
	var g [8]uint16
	for i := range g {
		g[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	runAt, runLen := -1, 0
	for i := 0; i < 8; i++ {
		n := 0
		for i+n < 8 && g[i+n] == 0 {
			n++
		}
		if n > runLen {
			runAt, runLen = i, n
		}
	}
	var parts []string
	for i := 0; i < 8; i++ {
		if i == runAt {
			parts = append(parts, "")
			if i == 0 {
				parts = append(parts, "")
			}
			if i+runLen == 8 {
				parts = append(parts, "")
			}
			i += runLen - 1
			continue
		}
		parts = append(parts, fmt.Sprintf("%x", g[i]))
	}
	return strings.Join(parts, ":")
}

// tcpserverLookup is what tcpserver's rules.c (the IPv6 build, Debian's
// ucspi-tcp-ipv6) finds in rules.cdb for a client whose $TCPREMOTEIP is
// ip, with no TCPREMOTEINFO and no host name: the exact ip; then, from
// the longest down, every prefix of ip ending in "." or ":" (the whole
// ip again if it ends so); then "". The first record of a key wins.
func tcpserverLookup(t *testing.T, db *cdb.CDB, ip string) (key string, data string, found bool) {
	t.Helper()
	get := func(k string) bool {
		v, err := db.Get([]byte(k))
		if err != nil {
			t.Fatal(err)
		}
		if v == nil {
			return false
		}
		key, data, found = k, string(v), true
		return true
	}
	if get(ip) {
		return
	}
	for l := len(ip); l > 0; l-- {
		if c := ip[l-1]; (c == '.' || c == ':') && get(ip[:l]) {
			return
		}
	}
	get("")
	return
}

// randomAddr draws addresses that share prefixes and zero groups often:
// IPv6 in 2001:db8::/32 with each later group zero half the time, IPv4 in
// 10.0.0.0/22.
func randomAddr(r *rand.Rand) netip.Addr {
	if r.IntN(3) == 0 {
		return netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(4)), byte(r.IntN(256))})
	}
	var b [16]byte
	b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
	for i := 2; i < 8; i++ {
		if r.IntN(2) == 0 {
			v := uint16(1 + r.IntN(8))
			b[2*i], b[2*i+1] = byte(v>>8), byte(v)
		}
	}
	return netip.AddrFrom16(b)
}

func TestIP6FmtAgreesWithTCPKey(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		a := randomAddr(r)
		if got, want := string(appendTCPKey(nil, a)), ip6fmt(a); got != want {
			t.Fatalf("%s: appendTCPKey %q, ip6_fmt %q", a, got, want)
		}
	}
}

// TestNoGrantMatchesAnotherClient emulates tcpserver's lookups over the
// cdb relaygate writes for random grants: a client that is not granted
// gets exactly what the site's rules alone give it (it never meets a
// grant's record, even one that reads as a prefix of its address, such as
// 2001:db8:: for 2001:db8::7:1:2:3:4); a granted client gets its grant,
// unless its key would be such a prefix (left out, counted).
func TestNoGrantMatchesAnotherClient(t *testing.T) {
	dir := t.TempDir()
	static := write(t, dir, "tcp.smtp", "127.:allow,RELAYCLIENT=\"\"\n2001:db8:1::allow,SITE=\"1\"\n:allow,CATCHALL=\"\"\n")
	bare := filepath.Join(dir, "bare.cdb")
	o, err := newTCPRules(Config{TCPRules: bare, TCPRulesStatic: static})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Write(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	siteOnly, err := cdb.Open(bare)
	if err != nil {
		t.Fatal(err)
	}
	defer siteOnly.Close()

	r := rand.New(rand.NewPCG(3, 4))
	for round := range 20 {
		granted := map[netip.Addr]bool{}
		var gs []netip.Addr
		for range 300 {
			a := randomAddr(r)
			if !granted[a] {
				granted[a] = true
				gs = append(gs, a)
			}
		}
		out := filepath.Join(dir, fmt.Sprintf("rules%d.cdb", round))
		o, err := newTCPRules(Config{TCPRules: out, TCPRulesStatic: static})
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Write(context.Background(), gs); err != nil {
			t.Fatal(err)
		}
		db, err := cdb.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		// The clients: fresh random addresses, and for each grant whose
		// text ends in "::" the same address with the zero groups after
		// the first of that run made non-zero: its text starts with the
		// grant's (2001:db8:: → 2001:db8::7:1:2:3:4).
		var clients []netip.Addr
		for range 3000 {
			clients = append(clients, randomAddr(r))
		}
		prefixKeys, extended := 0, 0
		for _, g := range gs {
			text := ip6fmt(g)
			if !strings.HasSuffix(text, ":") {
				continue
			}
			prefixKeys++
			b := g.As16()
			s := 8
			for s > 0 && b[2*s-2] == 0 && b[2*s-1] == 0 {
				s--
			}
			for i := s + 1; i < 8; i++ {
				b[2*i+1] = byte(1 + r.IntN(9))
			}
			c := netip.AddrFrom16(b)
			if !granted[c] && strings.HasPrefix(ip6fmt(c), text) && ip6fmt(c) != text {
				extended++
			}
			clients = append(clients, c)
		}
		if extended == 0 {
			t.Fatal("no client's text starts with a grant's ending in \"::\": the test proves nothing")
		}
		for _, c := range clients {
			ip := ip6fmt(c)
			key, data, _ := tcpserverLookup(t, db, ip)
			if granted[c] {
				if strings.HasSuffix(ip, ":") {
					if key == ip {
						t.Fatalf("%s (%q): a key ending in \":\" was written", c, ip)
					}
				} else if key != ip || !strings.HasSuffix(data, "+RELAYCLIENT=\x00") {
					t.Fatalf("granted %s (%q): found %q = %q", c, ip, key, data)
				}
				continue
			}
			wantKey, wantData, _ := tcpserverLookup(t, siteOnly, ip)
			if key != wantKey || data != wantData {
				t.Fatalf("client %s (%q), not granted: found %q = %q; the site's rules alone give %q = %q", c, ip, key, data, wantKey, wantData)
			}
		}
		if got := o.leftOutPrefix.Load(); got != int64(prefixKeys) {
			t.Errorf("left out as prefix keys: %d, want %d", got, prefixKeys)
		}
		db.Close()
	}
}

// TestGrantKeepsSiteRules: a grant gets the rule tcpserver would apply to
// its address (exact, else the longest prefix, else the catch-all) plus
// -tcprules-grant's variables; a deny for the address or its network
// keeps it out; the catch-all :deny does not.
func TestGrantKeepsSiteRules(t *testing.T) {
	dir := t.TempDir()
	site := `10.:deny
10.1.:allow,QMAILQUEUE="/var/qmail/bin/qmail-scanner-queue",DATABYTES="1000000"
10.1.2.3:allow,RELAYCLIENT="@x",GREETING="hi"
192.0.2.66:deny
`
	for _, c := range []struct {
		name, catchAll, grant string
		want                  map[string]string // client: data tcpserver finds; "" for none
	}{
		{"catch-all allow", ":allow,RBLSMTPD=\"\"\n", "", map[string]string{
			"10.9.9.9":      "D\x00",
			"10.1.5.5":      "+QMAILQUEUE=/var/qmail/bin/qmail-scanner-queue\x00+DATABYTES=1000000\x00+RELAYCLIENT=\x00",
			"10.1.2.3":      "+GREETING=hi\x00+RELAYCLIENT=\x00",
			"192.0.2.66":    "D\x00",
			"198.51.100.1":  "+RBLSMTPD=\x00+RELAYCLIENT=\x00",
			"198.51.100.99": "+RBLSMTPD=\x00", // not granted
		}},
		{"catch-all deny", ":deny\n", `allow,RELAYCLIENT="",RBLSMTPD=""`, map[string]string{
			"10.9.9.9":      "D\x00",
			"10.1.5.5":      "+QMAILQUEUE=/var/qmail/bin/qmail-scanner-queue\x00+DATABYTES=1000000\x00+RELAYCLIENT=\x00+RBLSMTPD=\x00",
			"10.1.2.3":      "+GREETING=hi\x00+RELAYCLIENT=\x00+RBLSMTPD=\x00",
			"192.0.2.66":    "D\x00",
			"198.51.100.1":  "+RELAYCLIENT=\x00+RBLSMTPD=\x00",
			"198.51.100.99": "D\x00",
		}},
		{"no catch-all", "", "", map[string]string{
			"198.51.100.1":  "+RELAYCLIENT=\x00",
			"198.51.100.99": "<none>",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			static := write(t, dir, "tcp.smtp", site+c.catchAll)
			out := filepath.Join(dir, "rules.cdb")
			o, err := newTCPRules(Config{TCPRules: out, TCPRulesStatic: static, TCPRulesGrant: c.grant})
			if err != nil {
				t.Fatal(err)
			}
			if err := o.Write(context.Background(), addrs(t, "10.9.9.9", "10.1.5.5", "10.1.2.3", "192.0.2.66", "198.51.100.1")); err != nil {
				t.Fatal(err)
			}
			db, err := cdb.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for client, want := range c.want {
				_, got, found := tcpserverLookup(t, db, client)
				if !found {
					got = "<none>"
				}
				if got != want {
					t.Errorf("%s: %q, want %q", client, got, want)
				}
			}
			if got := o.leftOutDeny.Load(); got != 2 {
				t.Errorf("grants left out as denied: %d, want 2 (10.9.9.9 by its network, 192.0.2.66 by its address)", got)
			}
		})
	}
}

// TestStaticHalfWrittenNotRead: a static file seen changing is read only
// once it held still for a whole poll, so the truncated state an editor
// passes through (here: the deny line not yet written) never reaches the
// cdb.
func TestStaticHalfWrittenNotRead(t *testing.T) {
	dir := t.TempDir()
	full := "127.:allow,RELAYCLIENT=\"\"\n192.0.2.10:deny\n:allow\n"
	static := write(t, dir, "tcp.smtp", full)
	out := filepath.Join(dir, "rules.cdb")
	o, err := newTCPRules(Config{TCPRules: out, TCPRulesStatic: static})
	if err != nil {
		t.Fatal(err)
	}
	grants := addrs(t, "192.0.2.10", "192.0.2.11")
	denied := func() bool {
		db, err := cdb.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		_, data, _ := tcpserverLookup(t, db, "192.0.2.10")
		return data == "D\x00"
	}
	poll := func() {
		if o.Changed() {
			if err := o.Write(context.Background(), grants); err != nil {
				t.Fatal(err)
			}
		}
		if !denied() {
			t.Fatal("the cdb lost the site's deny: a half-written static file was read")
		}
	}
	if err := o.Write(context.Background(), grants); err != nil {
		t.Fatal(err)
	}
	poll()
	poll()
	// An editor rewrites the file in place: first part, then the rest
	// (one more rule at the end), polled in between.
	os.WriteFile(static, []byte("127.:allow,RELAYCLIENT=\"\"\n"), 0o644)
	poll()
	os.WriteFile(static, []byte(full+"192.0.2.99:deny\n"), 0o644)
	poll()
	poll() // held still: read now
	db, err := cdb.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, data, _ := tcpserverLookup(t, db, "192.0.2.99"); data != "D\x00" {
		t.Errorf("the finished edit was not read: 192.0.2.99 = %q", data)
	}
}

// TestBrokenStaticKeepsGrantsMoving: after a static file that does not
// parse, the grants keep being written (an expired grant leaves, a new
// one comes) with the site's rules that last parsed; the error is counted
// once per version and reported by a gauge until the file parses again.
func TestBrokenStaticKeepsGrantsMoving(t *testing.T) {
	dir := t.TempDir()
	static := write(t, dir, "tcp.smtp", "192.0.2.66:deny\n:allow\n")
	out := filepath.Join(dir, "rules.cdb")
	o, err := newTCPRules(Config{TCPRules: out, TCPRulesStatic: static})
	if err != nil {
		t.Fatal(err)
	}
	get := func(ip string) string {
		db, err := cdb.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		_, data, _ := tcpserverLookup(t, db, ip)
		return data
	}
	settle := func() { // two polls: the file is read
		o.Changed()
		o.Changed()
	}
	if err := o.Write(context.Background(), addrs(t, "192.0.2.10")); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "tcp.smtp", "192.0.2.66:deny\n:allow RELAYCLIENT\n")
	settle()
	if err := o.Write(context.Background(), addrs(t, "192.0.2.11")); err != nil {
		t.Fatalf("a broken static file failed the write: %v", err)
	}
	if get("192.0.2.10") != "" || get("192.0.2.11") != "+RELAYCLIENT=\x00" || get("192.0.2.66") != "D\x00" {
		t.Errorf("with a broken static file: expired %q, new %q, site deny %q", get("192.0.2.10"), get("192.0.2.11"), get("192.0.2.66"))
	}
	if o.site.errors.Load() != 1 || o.site.stale.Load() != 1 {
		t.Errorf("static errors %d, stale %d; want 1, 1", o.site.errors.Load(), o.site.stale.Load())
	}
	settle()
	if err := o.Write(context.Background(), addrs(t, "192.0.2.12")); err != nil {
		t.Fatal(err)
	}
	if o.site.errors.Load() != 1 {
		t.Errorf("the same broken version counted %d times", o.site.errors.Load())
	}
	write(t, dir, "tcp.smtp", "192.0.2.77:deny\n:allow\n")
	settle()
	if err := o.Write(context.Background(), addrs(t, "192.0.2.12")); err != nil {
		t.Fatal(err)
	}
	if o.site.stale.Load() != 0 || get("192.0.2.77") != "D\x00" || get("192.0.2.66") != "" {
		t.Errorf("after the fix: stale %d, 192.0.2.77 %q, 192.0.2.66 %q", o.site.stale.Load(), get("192.0.2.77"), get("192.0.2.66"))
	}
}
