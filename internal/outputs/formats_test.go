package outputs

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/colinmarc/cdb"
)

func addrs(t testing.TB, ss ...string) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// The grants of the golden files: 192.0.2.66 is denied by the static file,
// whose rule must win (the grant is left out); the others each get the
// site's rule for them plus RELAYCLIENT.
var goldenGrants = []string{"192.0.2.10", "192.0.2.66", "10.0.1.3", "203.0.113.9", "127.0.0.5", "2001:db8::"}

// goldenGrantLines are the rules, in tcprules(1)'s format, that the
// grants must amount to, in the order written: before the site's, so
// that the first record of 10.0.1.3 is the grant's.
const goldenGrantLines = `192.0.2.10:allow,RELAYCLIENT=""
10.0.1.3:allow,RBLSMTPD="",RELAYCLIENT=""
203.0.113.9:allow,RBLSMTPD="-spam from here",RELAYCLIENT=""
127.0.0.5:allow,RELAYCLIENT=""
`

// TestTCPRulesGolden: the cdb relaygate writes from testdata/tcp.smtp and
// the grants is byte for byte what tcprules(1) writes from
// goldenGrantLines followed by the same static file
// (testdata/tcprules.golden.cdb was made so; with ucspi-tcp installed the
// test makes it again with the real tcprules and compares that too).
func TestTCPRulesGolden(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "tcp.smtp.cdb")
	o, err := newTCPRules(Config{TCPRules: out, TCPRulesStatic: "testdata/tcp.smtp"})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Write(context.Background(), addrs(t, goldenGrants...)); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	want, err := os.ReadFile("testdata/tcprules.golden.cdb")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("cdb differs from testdata/tcprules.golden.cdb (%d bytes, want %d)", len(got), len(want))
	}
	if _, err := exec.LookPath("tcprules"); err != nil {
		t.Log("tcprules not installed: compared with the committed golden file only")
		return
	}
	static, _ := os.ReadFile("testdata/tcp.smtp")
	in := append([]byte(goldenGrantLines), static...)
	real := filepath.Join(dir, "real.cdb")
	cmd := exec.Command("tcprules", real, real+".tmp")
	cmd.Stdin = bytes.NewReader(in)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tcprules: %v: %s", err, b)
	}
	if b, _ := os.ReadFile(real); !bytes.Equal(got, b) {
		t.Errorf("cdb differs from what the real tcprules writes (%d bytes, want %d)", len(got), len(b))
	}
}

// TestTCPRulesLookups reads the written cdb as tcpserver does: the first
// record of a key wins.
func TestTCPRulesLookups(t *testing.T) {
	out := filepath.Join(t.TempDir(), "rules.cdb")
	o, err := newTCPRules(Config{TCPRules: out, TCPRulesStatic: "testdata/tcp.smtp"})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Write(context.Background(), addrs(t, "192.0.2.10", "192.0.2.66", "2001:db8::5", "::ffff:198.51.100.9", "198.51.100.7")); err != nil {
		t.Fatal(err)
	}
	db, err := cdb.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for key, want := range map[string]string{
		"192.0.2.10":   "+RELAYCLIENT=\x00",
		"192.0.2.66":   "D\x00",
		"2001:db8::5":  "+RELAYCLIENT=\x00",
		"198.51.100.9": "+RELAYCLIENT=\x00",
		"127.":         "+RELAYCLIENT=\x00",
		"10.0.1.5":     "+RELAYCLIENT=\x00+RBLSMTPD=\x00",
		"198.51.100.7": "+GREETING=hello world\x00+RELAYCLIENT=\x00", // granted: the site's variables kept
		"":             "",
	} {
		v, err := db.Get([]byte(key))
		if err != nil || v == nil {
			t.Errorf("%q: not found (%v)", key, err)
			continue
		}
		if string(v) != want {
			t.Errorf("%q = %q, want %q", key, v, want)
		}
	}
}

func TestTCPKeyIPv6(t *testing.T) {
	// ucspi-tcp-ipv6's ip6_fmt: the first longest zero run, even a single
	// group, is "::". A key ending in ":" is one tcpserver's IPv6 build
	// also reads as a prefix of other clients' addresses: never written.
	for in, want := range map[string]struct {
		key    string
		prefix bool
	}{
		"2001:db8::5":                {"2001:db8::5", false},
		"2001:db8:0:1:2:3:4:5":       {"2001:db8::1:2:3:4:5", false},
		"2001:db8:0:0:1:0:0:1":       {"2001:db8::1:0:0:1", false},
		"2001:0:0:1:0:0:0:1":         {"2001:0:0:1::1", false},
		"::1":                        {"::1", false},
		"2001:db8::":                 {"2001:db8::", true},
		"2001:db8:aa:bb:cc:dd:ee:ff": {"2001:db8:aa:bb:cc:dd:ee:ff", false},
		"::ffff:192.0.2.1":           {"192.0.2.1", false},
		"fe80:0:0:0:0:0:0:0":         {"fe80::", true},
		"2001:db8:1:2:3:4:5:0":       {"2001:db8:1:2:3:4:5::", true},
		"2001:db8:1:0:0:5:6:0":       {"2001:db8:1::5:6:0", false},
	} {
		got := appendTCPKey(nil, netip.MustParseAddr(in))
		if string(got) != want.key || tcpKeyIsPrefix(got) != want.prefix {
			t.Errorf("%s: %q (prefix %v), want %q (prefix %v)", in, got, tcpKeyIsPrefix(got), want.key, want.prefix)
		}
	}
}

func TestParseTCPRules(t *testing.T) {
	rules, err := parseTCPRules([]byte("10.0.1-3.:allow\n#c\n\n   \nnocolon\n2001:db8::1:deny\n1.2.3.4:allow,A=\"x\",B='y'  \t\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rules {
		got = append(got, string(r.key)+"="+strings.ReplaceAll(string(r.data), "\x00", "|"))
	}
	want := "10.0.1.=|10.0.2.=|10.0.3.=|2001:db8::1=D||1.2.3.4=+A=x|+B=y|"
	if strings.Join(got, "|") != want {
		t.Errorf("got %q\nwant %q", strings.Join(got, "|"), want)
	}
	for _, bad := range []string{"1.2.3.4:permit", "1.2.3.4:allow,X", `1.2.3.4:allow,X="y`, "1.2.3.a-b:allow", "1.2.3.4:allow x"} {
		if _, err := parseTCPRules([]byte(bad + "\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: err %v, want a refusal naming line 1", bad, err)
		}
	}
}

func TestSendmailText(t *testing.T) {
	got := string(appendSendmailText(nil, addrs(t, "192.0.2.10", "2001:db8::5", "::ffff:198.51.100.7")))
	want := "192.0.2.10\tOK\nIPv6:2001:db8::5\tOK\n198.51.100.7\tOK\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestOpenSMTPDTable(t *testing.T) {
	got := string(appendOpenSMTPDTable(nil, addrs(t, "192.0.2.10", "2001:db8::5", "::ffff:198.51.100.7")))
	want := "# @list\n# written by relaygate; replaced whole at each change\n192.0.2.10\n2001:db8::5\n198.51.100.7\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestSendmailMakemap builds the map with the real makemap when sendmail
// is installed, and reads it back with makemap -u.
func TestSendmailMakemap(t *testing.T) {
	mm, err := findMakemap()
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	o := newSendmail(filepath.Join(dir, "relaygate"), mm)
	if err := o.Write(context.Background(), addrs(t, "192.0.2.10", "2001:db8::5")); err != nil {
		t.Fatal(err)
	}
	b, err := exec.Command(mm, "-u", "hash", filepath.Join(dir, "relaygate")).CombinedOutput()
	if err != nil {
		t.Fatalf("makemap -u: %v: %s", err, b)
	}
	if s := string(b); !strings.Contains(s, "192.0.2.10\tOK") || !strings.Contains(strings.ToLower(s), "ipv6:2001:db8::5\tok") {
		t.Errorf("makemap -u printed %q", s)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "relaygate.db" {
		t.Errorf("directory holds %v, want relaygate.db alone", entries)
	}
	before := inode(t, filepath.Join(dir, "relaygate.db"))
	if err := o.Write(context.Background(), addrs(t, "192.0.2.11")); err != nil {
		t.Fatal(err)
	}
	if inode(t, filepath.Join(dir, "relaygate.db")) != before {
		t.Error("the rebuilt map is another file: sendmail fails to open a map replaced between its stat and its open")
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestSendmailMapRebuiltInPlace: the map stays the same file across
// rebuilds (makemap rebuilds it in place under its lock), because sendmail
// refuses a map whose file was replaced between its stat and its open
// ("file changed after open"), and reads that as "not granted". A
// stand-in makemap that rewrites NAME.db in place, as the real one does.
func TestSendmailMapRebuiltInPlace(t *testing.T) {
	dir := t.TempDir()
	mm := write(t, dir, "makemap", "#!/bin/sh\nexec /bin/cat > \"$2.db\"\n")
	os.Chmod(mm, 0o755)
	o := newSendmail(filepath.Join(dir, "relay"), mm)
	if err := o.Write(context.Background(), addrs(t, "192.0.2.10")); err != nil {
		t.Fatal(err)
	}
	before := inode(t, filepath.Join(dir, "relay.db"))
	if err := o.Write(context.Background(), addrs(t, "192.0.2.11", "2001:db8::5")); err != nil {
		t.Fatal(err)
	}
	if inode(t, filepath.Join(dir, "relay.db")) != before {
		t.Error("the map was replaced by another file")
	}
	b, _ := os.ReadFile(filepath.Join(dir, "relay.db"))
	if string(b) != "192.0.2.11\tOK\nIPv6:2001:db8::5\tOK\n" {
		t.Errorf("map %q", b)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "relay.db")); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
}

// TestOpenSMTPDUpdateFails: the table is replaced, and an update command
// that fails or says "command failed" is the write's error.
func TestOpenSMTPDUpdateFails(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "relay")
	for _, update := range [][]string{{"false"}, {"echo", "command failed"}} {
		o := &openSMTPD{path: table, update: update}
		if err := o.Write(context.Background(), addrs(t, "192.0.2.10")); err == nil {
			t.Errorf("%v: no error", update)
		}
	}
	o := &openSMTPD{path: table, update: []string{"true"}}
	if err := o.Write(context.Background(), addrs(t, "192.0.2.11")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(table); !strings.HasSuffix(string(b), "\n192.0.2.11\n") {
		t.Errorf("table %q", b)
	}
}
