package outputs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

// makedatprog is Courier's makedatprog (makedat/makedatprog.c) reading
// text, written from its C source and checked against the real one (the
// courier-mta layer, Courier 1.0.16): lines end at "\n" and at the first
// NUL (C strings); a line "." ends the input, the end of the input before
// it fails; lines empty or starting with "#" are skipped; the key ends at
// the first TAB, an empty value is "1", a key given twice fails.
func makedatprog(text []byte) (map[string]string, error) {
	recs := map[string]string{}
	for {
		i := bytes.IndexByte(text, '\n')
		if i < 0 {
			return nil, errors.New(`end of input before the line "."`)
		}
		line := text[:i]
		text = text[i+1:]
		if j := bytes.IndexByte(line, 0); j >= 0 {
			line = line[:j]
		}
		if string(line) == "." {
			return recs, nil
		}
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		key, val, _ := bytes.Cut(line, []byte{'\t'})
		if len(key) == 0 {
			continue
		}
		if len(val) == 0 {
			val = []byte("1")
		}
		if _, dup := recs[string(key)]; dup {
			return nil, fmt.Errorf("Cannot store record for %s - duplicate", key)
		}
		recs[string(key)] = string(val)
	}
}

// perlCIDRLine is makedat -cidr's Perl pattern,
// /^([a-fA-F0-9:\.]+[\-\/][a-fA-F0-9:\.]+)\s+(.*)$/, for a line read with
// its newline ("." stops at a newline, "$" matches before the last one).
var perlCIDRLine = regexp.MustCompile(`^([a-fA-F0-9:.]+[-/][a-fA-F0-9:.]+)[\t\n\v\f\r ]+([^\n]*)\n?$`)

// makesmtpaccess is what Courier's makesmtpaccess builds from the site's
// text: makedat -cidr's Perl expansion of network lines (Net::CIDR
// emulated with courierExpand), then makedatprog.
func makesmtpaccess(static []byte) (map[string]string, error) {
	var b []byte
	for _, l := range bytes.Split(static, []byte{'\n'}) {
		if m := perlCIDRLine.FindSubmatch(append(l, '\n')); m != nil {
			keys, err := courierExpand(string(m[1]))
			if err != nil {
				return nil, err
			}
			for _, k := range keys {
				b = append(append(append(append(b, k...), '\t'), m[2]...), '\n')
			}
			continue
		}
		b = append(append(b, l...), '\n')
	}
	return makedatprog(append(b, ".\n"...))
}

// tcpdVars is the variables couriertcpd sets for a record's value
// (tcpd.c doallowaccess), or nil for a deny.
func tcpdVars(v string) map[string]bool {
	if strings.HasPrefix(v, "deny") {
		return nil
	}
	p := v
	if strings.HasPrefix(p, "allow") {
		p = strings.TrimPrefix(p[5:], ",")
	}
	var quote byte
	names := map[string]bool{}
	for len(p) > 0 {
		var item []byte
		i := 0
		for ; i < len(p); i++ {
			c := p[i]
			if c == ',' && quote == 0 {
				i++
				break
			}
			if quote == 0 && (c == '"' || c == '\'') {
				quote = c
				continue
			}
			if quote != 0 && c == quote {
				quote = 0
				continue
			}
			item = append(item, c)
		}
		p = p[i:]
		s := string(item)
		if !strings.Contains(s, "=") {
			s += "="
		}
		s = strings.Trim(s, " \t\n\v\f\r")
		name, _, _ := strings.Cut(s, "=")
		names[name] = true
	}
	return names
}

// checkCourierModel builds the access file relaygate hands makedat for
// static and grants, runs it through makedatprog as Courier would, and
// checks what couriertcpd then does: makedat accepts the text; the file
// holds the site's rules as makesmtpaccess would build them, plus one
// record per grant; a grant the site denies (exactly or by a network)
// stays denied, every other grant gets RELAYCLIENT; and every client
// not granted gets what the site's rules alone give it.
func checkCourierModel(t *testing.T, static []byte, grants, others []netip.Addr) {
	t.Helper()
	rules, err := parseCourierAccess(static)
	if err != nil {
		return
	}
	site, err := makesmtpaccess(static)
	if err != nil {
		t.Fatalf("relaygate parsed rules makesmtpaccess refuses (%v):\n%q", err, static)
	}
	o := newCourier(Config{CourierSmtpaccess: "x.dat"}, "makedat")
	o.site.rules = rules
	o.useSiteRules()
	for k, v := range site {
		if o.rules[k] != v {
			t.Fatalf("site record %q: makesmtpaccess %q, relaygate %q\n%q", k, v, o.rules[k], static)
		}
	}
	if len(o.rules) != len(site) {
		t.Fatalf("relaygate reads %d rules, makesmtpaccess builds %d\n%q", len(o.rules), len(site), static)
	}
	text, deny := o.courierText(grants)
	recs, err := makedatprog(append(text, ".\n"...))
	if err != nil {
		t.Fatalf("makedat fails on relaygate's text (%v):\n%q", err, text)
	}
	denied := map[netip.Addr]bool{}
	for _, a := range deny {
		denied[a] = true
	}
	grantKeys := map[string]bool{}
	for _, a := range grants {
		k := string(appendCourierKey(nil, a))
		grantKeys[k] = true
		fk, v, ok := courierLookup(recs, k)
		if denied[a] {
			if sk, sv, _ := courierLookup(site, k); !courierDenies(sv) || sk == "*" {
				t.Errorf("grant %s left out, but the site's rule for it is %q %q", a, sk, sv)
			}
			if !ok || !courierDenies(v) {
				t.Errorf("grant %s the site denies: the file gives it %q %q", a, fk, v)
			}
			continue
		}
		if !ok || fk != k || !tcpdVars(v)["RELAYCLIENT"] {
			t.Errorf("grant %s: the file gives it %q %q (%v), not RELAYCLIENT\n%q", a, fk, v, ok, text)
		}
	}
	for k, v := range site {
		if !grantKeys[k] && recs[k] != v {
			t.Errorf("site record %q %q is %q in the file", k, v, recs[k])
		}
	}
	for _, a := range others {
		k := string(appendCourierKey(nil, a))
		if grantKeys[k] {
			continue
		}
		sk, sv, sok := courierLookup(site, k)
		fk, fv, fok := courierLookup(recs, k)
		if sk != fk || sv != fv || sok != fok {
			t.Errorf("client %s not granted: the site gives it %q %q %v, the file %q %q %v", a, sk, sv, sok, fk, fv, fok)
		}
	}
}

// courierModelCases are hostile static files: NULs, "." lines, CR, keys
// with blanks, duplicates between the site and the grants, networks
// without a value, quotes left open.
var courierModelCases = []string{
	"192.0.2.7\x00\tdeny\n",           // makedat: the key 192.0.2.7, value 1
	"192.0.2.7\x00junk\tdeny\n",       // the same
	".\x00junk\n10\tallow,X\n",        // makedat stops at ".<NUL>": so does relaygate
	"192.0.2\tdeny\x00,allow\n",       // a value cut at the NUL: still a deny
	"192.0.2\tallow,X\x00,deny\n",     // "allow,X"
	"192.0.2.0/24\tdeny\x00x\n",       // expanded, the value cut
	"192.0.2.0/24\n",                  // Perl: the key 192.0.2, value 1
	"198.51.100.0/24\n*\tdeny\n",      // ... so clients in it are not denied by *
	"192.0.2.7\r\n192.0.2\tdeny\r\n",  // CR kept: the key "192.0.2.7\r" never matches
	"192.0.2.7 deny\n192.0.2\tdeny\n", // the key "192.0.2.7 deny"
	"192.0.2.7\tallow,A=\"x\n",        // a quote left open
	"192.0.2.7\tallow,A='x\"y\n",      // another
	"192.0.2.7\tallow,\n",             // a trailing comma
	"192.0.2.7\t1\n",                  // no allow
	"192.0.2.7\t deny\n",              // not a deny for couriertcpd
	"#192.0.2.7\tdeny\n192.0.2.8\tdeny\n",
	"fd00:1::/32\tdeny\n:fd00:0002\tdeny\nfd00::3\tdeny\n:FD00:0004\tdeny\n",
	"::ffff:192.0.2.0/120\tdeny\n192.0.2.9\tallow,RELAYCLIENT\n",
	"*\tdeny\n10\tallow\n10.1\tdeny\n",
	"\xff\xfe\t\xff\n192.0.2.7\t\xff\n",
}

func courierModelGrants() ([]netip.Addr, []netip.Addr) {
	var grants, others []netip.Addr
	for _, s := range []string{"192.0.2.7", "192.0.2.8", "::ffff:192.0.2.9", "198.51.100.1", "10.1.2.3", "10.2.3.4",
		"fd00:1::1", "fd00:2::1", "fd00::3", "fd00:4::1", "2001:db8::1", "fe80::1%eth0", "fe80::1%eth1"} {
		grants = append(grants, netip.MustParseAddr(s))
	}
	for _, s := range []string{"192.0.2.6", "192.0.2.10", "198.51.100.2", "10.1.2.4", "10.3.3.3", "fd00:1::2", "fd00:2::2",
		"fd00:4::2", "2001:db8::2", "203.0.113.1"} {
		others = append(others, netip.MustParseAddr(s))
	}
	return grants, others
}

// TestCourierModel: relaygate's access file, as Courier's makedat builds
// it from relaygate's text and couriertcpd reads it, gives each grant
// RELAYCLIENT unless the site denies it, and every other client what the
// site's rules alone give it; makedat never refuses the text. Before the
// fix a NUL in a site's key made relaygate write that key and the grant's
// both (makedat: duplicate, every write failed), and a line ".<NUL>…"
// made makedat stop there and drop every grant, reporting success.
func TestCourierModel(t *testing.T) {
	grants, others := courierModelGrants()
	for _, c := range courierModelCases {
		t.Run(fmt.Sprintf("%q", c), func(t *testing.T) { checkCourierModel(t, []byte(c), grants, others) })
	}
	// What makedat stores, measured with Courier 1.0.16's makedat.
	rules, err := parseCourierAccess([]byte("192.0.2.7\x00\tdeny\n10.0.0.0/8\n192.0.2\tdeny\x00x\n.\x00junk\n192.0.2.8\tdeny\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rules {
		got = append(got, r.key+"|"+r.value)
	}
	if want := "[192.0.2.7|1 10|1 192.0.2|deny]"; fmt.Sprint(got) != want {
		t.Errorf("got %q, want %s", got, want)
	}
}

// FuzzCourierModel: any static text relaygate accepts, with the grants,
// gives a file makedat accepts and couriertcpd reads as the site's rules
// plus the grants (checkCourierModel).
func FuzzCourierModel(f *testing.F) {
	for _, c := range courierModelCases {
		f.Add([]byte(c), []byte{192, 0, 2, 7})
	}
	f.Add([]byte("10.0.0.0/8\tdeny\n"), []byte{10, 1, 2, 3})
	f.Add([]byte(":fd00:0001\tdeny\n"), []byte{0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	grants, others := courierModelGrants()
	f.Fuzz(func(t *testing.T, static, addr []byte) {
		g := grants
		if a, ok := netip.AddrFromSlice(addr); ok {
			g = append(g[:len(g):len(g)], a)
		}
		checkCourierModel(t, static, g, others)
	})
}

// TestCourierBuildRefusesCut: makedat input with a NUL or a "." line
// would lose the records after it; build refuses it and leaves nothing.
func TestCourierBuildRefusesCut(t *testing.T) {
	dir := t.TempDir()
	o := newCourier(Config{CourierSmtpaccess: filepath.Join(dir, "a.dat")}, fakeMakedat(t, dir))
	for _, text := range []string{"10\tx\x00\n192.0.2.8\tallow,RELAYCLIENT\n", ".\n192.0.2.8\tallow\n", "10\tx\n.\n192.0.2.8\tallow\n"} {
		if err := o.build(context.Background(), []byte(text)); err == nil {
			t.Errorf("%q: built", text)
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "makedat" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// TestCourierWorkFileIsOurs: the name makedat builds under (-tmp) is
// created by relaygate before makedat runs, so no one else's link can
// be there (GDBM_NEWDB would truncate its target).
func TestCourierWorkFileIsOurs(t *testing.T) {
	dir := t.TempDir()
	md := filepath.Join(dir, "makedat")
	script := `#!/bin/sh
for a; do case $a in -file=*) file=${a#-file=};; -tmp=*) tmp=${a#-tmp=};; esac; done
[ -f "$tmp" ] && [ ! -L "$tmp" ] && [ ! -s "$tmp" ] || exit 4
{ cat; echo .; } >"$tmp" && mv "$tmp" "$file"
`
	if err := os.WriteFile(md, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	o := newCourier(Config{CourierSmtpaccess: filepath.Join(dir, "a.dat"), CourierRestart: "true"}, md)
	if err := o.Write(context.Background(), []netip.Addr{netip.MustParseAddr("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}
}

// TestCourierStaticNotRegular: a static path that is a FIFO fails the
// read at once instead of blocking the output's goroutine for ever.
func TestCourierStaticNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip(err)
	}
	o := newCourier(Config{CourierSmtpaccess: filepath.Join(dir, "a.dat"), CourierStatic: fifo}, "makedat")
	done := make(chan error, 1)
	go func() { _, err := o.site.read(); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "neither a regular file") {
			t.Errorf("FIFO: %v", err)
		}
	case <-time.After(testutil.EventuallyFloor):
		t.Fatal("reading a FIFO as the static rules blocked")
	}
}

// TestCourierStaticBounded: many wide IPv6 networks (each /17 is 32,768
// keys) are refused as a whole, not only line by line.
func TestCourierStaticBounded(t *testing.T) {
	var b strings.Builder
	for i := range 40 {
		fmt.Fprintf(&b, "fd%02x::/17\tdeny\nfd%02x:8000::/17\tdeny\n", i, i)
	}
	if _, err := parseCourierAccess([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("2,621,440 keys: %v", err)
	}
}

func TestCheckCourierKeysAndAccessLocal(t *testing.T) {
	dir := t.TempDir()
	conf := write(t, dir, "esmtpd", "ACCESSFILE=${sysconfdir}/smtpaccess\nTCPDOPTS=\"-stderrlogger=/usr/sbin/courierlogger -noidentlookup\"\n")
	write(t, dir, "esmtpd-msa", "TCPDOPTS=\"-noidentlookup -accesslocal\"\n")
	static := write(t, dir, "smtpaccess", "127.0.0.1\tallow,RELAYCLIENT\nfd00::1\tdeny\n:FD00:0001\tdeny\n10.01\tdeny\n192.0.2.7 deny\n:fd00:0002\tdeny\n192.0.2.1.25\tallow\n*.25\tallow\n")
	c := Config{CourierSmtpaccess: filepath.Join(dir, "smtpaccess.dat"), CourierStatic: static, CourierRestart: "true"}
	got := findings(Check(c, CheckOptions{CourierEsmtpd: conf, EximConfigs: []string{}}))
	keys := got["courier-static-keys"]
	for _, k := range []string{`"fd00::1"`, `":FD00:0001"`, `"10.01"`, `"192.0.2.7 deny"`} {
		if !strings.Contains(keys, k) {
			t.Errorf("%s not flagged: %v", k, got)
		}
	}
	for _, k := range []string{`"127.0.0.1"`, `":fd00:0002"`, `"192.0.2.1.25"`, `"*.25"`} {
		if strings.Contains(keys, k) {
			t.Errorf("%s flagged: %v", k, got)
		}
	}
	if !strings.Contains(got["courier-accesslocal"], "PROBLEM") || !strings.Contains(got["courier-accesslocal"], "esmtpd-msa") {
		t.Errorf("-accesslocal not flagged: %v", got)
	}
	write(t, dir, "esmtpd-msa", "#TCPDOPTS=\"-accesslocal\"\n")
	write(t, dir, "smtpaccess", "127.0.0.1\tallow,RELAYCLIENT\n")
	got = findings(Check(c, CheckOptions{CourierEsmtpd: conf, EximConfigs: []string{}}))
	if got["courier-accesslocal"] != "" || got["courier-static-keys"] != "" {
		t.Errorf("flagged: %v", got)
	}
}
