package outputs

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCourierKey(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"192.0.2.10", "192.0.2.10"},
		{"::ffff:192.0.2.10", "192.0.2.10"}, // couriertcpd looks mapped clients up dotted
		{"::1", ":0000:0000:0000:0000:0000:0000:0000:0001"},
		{"fd00:1:2:3:4:5:6:7", ":fd00:0001:0002:0003:0004:0005:0006:0007"},
		{"2001:DB8::ABCD", ":2001:0db8:0000:0000:0000:0000:0000:abcd"},
	} {
		if got := string(appendCourierKey(nil, netip.MustParseAddr(c.in))); got != c.want {
			t.Errorf("%s: %q, want %q", c.in, got, c.want)
		}
	}
}

// The expansions were measured with the courier-mta layer's Perl
// Net::CIDR (makedat -cidr's): 10.0.0.0/8 → 10; 192.168.0.0/23 →
// 192.168.0, 192.168.1; 10.1.2.3-10.1.2.5 → three addresses;
// fd00:1::/32 → :fd00:0001; fd00:2::/20 → :fd00:0000 … :fd00:0fff.
func TestCourierExpand(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
		n    int
	}{
		{"10.0.0.0/8", []string{"10"}, 1},
		{"192.168.0.0/23", []string{"192.168.0", "192.168.1"}, 2},
		{"192.168.5.7/24", []string{"192.168.5"}, 1},
		{"10.1.2.3-10.1.2.5", []string{"10.1.2.3", "10.1.2.4", "10.1.2.5"}, 3},
		{"10.0.0.255-10.0.1.0", []string{"10.0.0.255", "10.0.1.0"}, 2},
		{"1.2.3.4/32", []string{"1.2.3.4"}, 1},
		{"fd00:1::/32", []string{":fd00:0001"}, 1},
		{"fd00:2::/20", []string{":fd00:0000", ":fd00:0001"}, 4096},
		{"fd00::1-fd00::2", []string{":fd00:0000:0000:0000:0000:0000:0000:0001", ":fd00:0000:0000:0000:0000:0000:0000:0002"}, 2},
	} {
		got, err := courierExpand(c.in)
		if err != nil || len(got) != c.n || !slices.Equal(got[:len(c.want)], c.want) {
			t.Errorf("%s: %d keys %.3q (%v), want %d starting %q", c.in, len(got), got, err, c.n, c.want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "0.0.0.0/0", "10.0.0.5-10.0.0.1", "10.0.0.1-fd00::1", "::1-ffff::", "1.2.3/8", "::/0"} {
		if got, err := courierExpand(bad); err == nil {
			t.Errorf("%s: accepted as %d keys", bad, len(got))
		}
	}
}

func TestParseCourierAccess(t *testing.T) {
	text := "# Debian's default\n" +
		"127.0.0.1\tallow,RELAYCLIENT\n" +
		":0000:0000:0000:0000:0000:0000:0000:0001\tallow,RELAYCLIENT\n" +
		"\n" +
		"10.0.0.0/8  allow,A\n" + // -cidr lines may use blanks
		"192.0.2.1 allow\n" + // others split at a TAB only: this key is never looked up
		"192.0.2.2\n" +
		"192.0.2.3\t\n" +
		"\tallow\n" +
		"192.0.2.4\t  deny\n" +
		".\n" +
		"192.0.2.5\tdeny\n"
	rules, err := parseCourierAccess([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rules {
		got = append(got, r.key+"|"+r.value)
	}
	want := []string{"127.0.0.1|allow,RELAYCLIENT", ":0000:0000:0000:0000:0000:0000:0000:0001|allow,RELAYCLIENT",
		"10|allow,A", "192.0.2.1 allow|1", "192.0.2.2|1", "192.0.2.3|1", "192.0.2.4|  deny"}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	for _, c := range []struct{ text, err string }{
		{"10\tallow\n10.0.0.0/8\tdeny\n", `line 2: the key "10" is also on line 1`},
		{"10.0.0.0/33\tallow\n", "line 1"},
		{"::/0\tallow\n", "write the key * instead"},
	} {
		if _, err := parseCourierAccess([]byte(c.text)); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: %v, want %q", c.text, err, c.err)
		}
	}
}

// TestCourierText is the exact text handed to makedat: the site's rules
// in their order (a granted address the site names keeping that rule's
// instructions plus RELAYCLIENT, in its place), then the other grants
// with the instructions of the rule couriertcpd would apply to them; a
// grant the site denies, exactly or by a network, left out.
func TestCourierText(t *testing.T) {
	rules, err := parseCourierAccess([]byte("127.0.0.1\tallow,RELAYCLIENT\n" +
		"192.0.2.6\tallow,SIZELIMIT=1000\n" +
		"192.0.2.7\tdeny\n" +
		"198.51.100\tallow,BLOCK=\"550 go away\"\n" +
		"203.0.113\tdeny\n" +
		":fd00:0001\tallow,V6=\"net\n" +
		"10.9\tallow,\n" +
		"*\tdeny\n"))
	if err != nil {
		t.Fatal(err)
	}
	o := newCourier(Config{CourierSmtpaccess: "x.dat"}, "makedat")
	o.site.rules = rules
	o.useSiteRules()
	var addrs []netip.Addr
	for _, a := range []string{"192.0.2.6", "192.0.2.7", "192.0.2.8", "198.51.100.9", "203.0.113.4",
		"fd00:1::5", "::ffff:10.9.0.1", "10.9.0.2", "2001:db8::1"} {
		addrs = append(addrs, netip.MustParseAddr(a))
	}
	text, deny := o.courierText(addrs)
	want := "127.0.0.1\tallow,RELAYCLIENT\n" +
		"192.0.2.6\tallow,SIZELIMIT=1000,RELAYCLIENT\n" +
		"192.0.2.7\tdeny\n" +
		"198.51.100\tallow,BLOCK=\"550 go away\"\n" +
		"203.0.113\tdeny\n" +
		":fd00:0001\tallow,V6=\"net\n" +
		"10.9\tallow,\n" +
		"*\tdeny\n" +
		"192.0.2.8\tallow,RELAYCLIENT\n" + // the catch-all deny keeps no grant out
		"198.51.100.9\tallow,BLOCK=\"550 go away\",RELAYCLIENT\n" +
		":fd00:0001:0000:0000:0000:0000:0000:0005\tallow,V6=\"net\",RELAYCLIENT\n" + // the open quote closed
		"10.9.0.1\tallow,RELAYCLIENT\n" +
		"10.9.0.2\tallow,RELAYCLIENT\n" +
		":2001:0db8:0000:0000:0000:0000:0000:0001\tallow,RELAYCLIENT\n"
	if string(text) != want {
		t.Errorf("got:\n%s\nwant:\n%s", text, want)
	}
	if got := fmt.Sprint(deny); got != "[192.0.2.7 203.0.113.4]" {
		t.Errorf("left out: %s", got)
	}
}

func TestCourierLookup(t *testing.T) {
	rules := map[string]string{"10": "a", "10.1.2": "b", ":fd00": "c", ":fd00:0001:0002": "d", "*": "e"}
	for _, c := range []struct{ key, found string }{
		{"10.1.2.3", "10.1.2"}, {"10.1.3.3", "10"}, {"11.1.1.1", "*"},
		{":fd00:0001:0002:0000:0000:0000:0000:0001", ":fd00:0001:0002"},
		{":fd00:0009:0000:0000:0000:0000:0000:0001", ":fd00"},
		{":2001:0db8:0000:0000:0000:0000:0000:0001", "*"},
	} {
		if k, _, ok := courierLookup(rules, c.key); !ok || k != c.found {
			t.Errorf("%s: %q %v, want %q", c.key, k, ok, c.found)
		}
	}
	if _, _, ok := courierLookup(map[string]string{"10": "a"}, "11.0.0.1"); ok {
		t.Error("no rule found a rule")
	}
}

// fakeMakedat stands in for Courier's makedat where Courier is not
// installed: it copies its input (up to ".", as makedatprog reads it)
// to -tmp, then renames that to -file, as makedat does.
func fakeMakedat(t *testing.T, dir string) string {
	p := filepath.Join(dir, "makedat")
	script := `#!/bin/sh
for a; do case $a in -src=*) src=${a#-src=};; -file=*) file=${a#-file=};; -tmp=*) tmp=${a#-tmp=};; esac; done
[ "$src" = - ] || exit 3
{ cat; echo .; } >"$tmp" && mv "$tmp" "$file"
`
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCourierWriteRestarts(t *testing.T) {
	dir := t.TempDir()
	static := filepath.Join(dir, "smtpaccess")
	if err := os.Mkdir(static, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, static, "default", "127.0.0.1\tallow,RELAYCLIENT\n")
	write(t, static, "local", "192.0.2.7\tdeny") // no final newline: still its own line
	write(t, static, "default~", "10\tallow,RELAYCLIENT\n")
	write(t, static, "x.dpkg-old", "11\tallow,RELAYCLIENT\n")
	dat := filepath.Join(dir, "smtpaccess.dat")
	mark := filepath.Join(dir, "restarted")
	o := newCourier(Config{CourierSmtpaccess: dat, CourierStatic: static, CourierRestart: "touch " + mark}, fakeMakedat(t, dir))
	addrs := []netip.Addr{netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("192.0.2.8")}
	if err := o.Write(context.Background(), addrs); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dat)
	if err != nil {
		t.Fatal(err)
	}
	if want := "127.0.0.1\tallow,RELAYCLIENT\n192.0.2.7\tdeny\n192.0.2.8\tallow,RELAYCLIENT\n.\n"; string(b) != want {
		t.Errorf("got %q, want %q", b, want)
	}
	if fi, err := os.Stat(dat); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode: %v %v", fi, err)
	}
	if _, err := os.Stat(mark); err != nil {
		t.Errorf("the restart command did not run: %v", err)
	}
	if o.leftOutDeny.Load() != 1 {
		t.Errorf("left out %d, want 1", o.leftOutDeny.Load())
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".relaygate-tmp-") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	// A failing restart fails the write (the file is in place, but
	// couriertcpd has not reopened it: retried).
	o.restart = []string{"false"}
	if err := o.Write(context.Background(), addrs); err == nil || !strings.Contains(err.Error(), "-courier-restart") {
		t.Errorf("failing restart: %v", err)
	}
	// A failing makedat leaves the file as it was and no temporary file.
	o.makedat = "false"
	before, _ := os.ReadFile(dat)
	if err := o.Write(context.Background(), addrs[1:]); err == nil {
		t.Error("failing makedat: no error")
	}
	if after, _ := os.ReadFile(dat); string(after) != string(before) {
		t.Error("a failed makedat changed the file")
	}
	ents, _ = os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".relaygate-tmp-") {
			t.Errorf("left behind after a failure: %s", e.Name())
		}
	}
}

func TestCourierConfigCheck(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		err string
	}{
		{Config{CourierStatic: "/etc/courier/smtpaccess"}, "only used with -courier-smtpaccess"},
		{Config{CourierRestart: "esmtpd restart"}, "only used with -courier-smtpaccess"},
		{Config{CourierSmtpaccess: "/x/a.dat", CourierRestart: "  "}, "empty command"},
		{Config{CourierSmtpaccess: "/x/a.dat", CourierStatic: "/x/a.dat"}, "the same file"},
		{Config{CourierSmtpaccess: "/x/pbs.cdb"}, "the same file"},
	} {
		if err := c.cfg.Check("/x/pbs.cdb"); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.err)
		}
	}
	if c := (Config{CourierSmtpaccess: "/x/a.dat"}); !c.Any() || c.Check("/x/pbs.cdb") != nil {
		t.Error("a plain -courier-smtpaccess refused")
	}
}

func TestCheckCourier(t *testing.T) {
	dir := t.TempDir()
	conf := write(t, dir, "esmtpd", "ACCESSFILE=${sysconfdir}/smtpaccess\n")
	static := write(t, dir, "smtpaccess", "127.0.0.1\tallow,RELAYCLIENT\n*\tallow,\"RELAYCLIENT\"\n")
	c := Config{CourierSmtpaccess: filepath.Join(dir, "smtpaccess.dat"), CourierRestart: "true"}
	got := findings(Check(c, CheckOptions{CourierEsmtpd: conf, EximConfigs: []string{}}))
	if !strings.Contains(got["courier-static"], "pass -courier-smtpaccess-static "+static) || !strings.HasPrefix(got["courier-dir"], "ok:") {
		t.Errorf("%v", got)
	}
	c.CourierStatic = static
	got = findings(Check(c, CheckOptions{CourierEsmtpd: conf, EximConfigs: []string{}}))
	if !strings.Contains(got["courier-open-relay"], "PROBLEM") || !strings.Contains(got["courier-esmtpd"], "esmtpd reads") {
		t.Errorf("%v", got)
	}
	c.CourierSmtpaccess = filepath.Join(dir, "other.dat")
	got = findings(Check(c, CheckOptions{CourierEsmtpd: conf, EximConfigs: []string{}}))
	if !strings.Contains(got["courier-esmtpd"], "not -courier-smtpaccess") {
		t.Errorf("%v", got)
	}
	got = findings(Check(Config{CourierSmtpaccess: c.CourierSmtpaccess}, CheckOptions{RunAs: "nobody", CourierEsmtpd: conf, EximConfigs: []string{}}))
	if !strings.Contains(got["courier-restart"], "sudo -n /usr/sbin/esmtpd restart") {
		t.Errorf("%v", got)
	}
}

func TestCourierSetsRelay(t *testing.T) {
	for v, want := range map[string]bool{
		"allow,RELAYCLIENT": true, "allow": false, "RELAYCLIENT": true, "allow,A=\"x,RELAYCLIENT\"": false,
		"allow,A,RELAYCLIENT=": true, "allow, RELAYCLIENT ": true, "allow,RELAYCLIENTX": false,
	} {
		if got := courierSetsRelay(v); got != want {
			t.Errorf("%q: %v", v, got)
		}
	}
}

// FuzzParseCourierAccess: the site's rules file is read as given; no input
// may crash the parser, and what it returns has unique keys with no TAB
// or newline, which makedat stores as they are.
func FuzzParseCourierAccess(f *testing.F) {
	for _, s := range []string{"127.0.0.1\tallow,RELAYCLIENT\n", "10.0.0.0/8 allow\n", "fd00::/17\tdeny\n",
		"10.0.0.1-10.0.3.255\tallow\n.\nx\n", "#c\n\n*\tdeny\n", "a-b\tc\n", "1.2.3.4-1.2.3.4\t\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rules, err := parseCourierAccess(b)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, r := range rules {
			if r.key == "" || strings.ContainsAny(r.key, "\t\n") || strings.Contains(r.value, "\n") || seen[r.key] {
				t.Fatalf("bad rule %q %q", r.key, r.value)
			}
			seen[r.key] = true
		}
	})
}
