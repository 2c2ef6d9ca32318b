package grants

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func grant(addr string) Grant {
	return Grant{Addr: netip.MustParseAddr(addr), User: "alice", Daemon: "dovecot", Host: "mx1"}
}

// TestTableMatchesReference drives the table and the reference table (the
// implementation it replaced, reftable_test.go) with the same random logins,
// logouts, expiries, exclusions and restores, and requires the same answers
// and the same grants after every step.
func TestTableMatchesReference(t *testing.T) {
	for seed := range uint64(24) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { checkAgainstReference(t, seed) })
	}
}

func checkAgainstReference(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	cfg := TableConfig{Grace: 10 * time.Minute, MaxSession: 30 * time.Minute, MaxEntries: 8 + rng.IntN(24)}
	tab, ref := NewTable(cfg), newRefTable(cfg)
	addr := func() netip.Addr {
		n := rng.IntN(48)
		if n%3 == 0 {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(n)})
		}
		if n%7 == 0 {
			return netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 192, 0, 2, byte(n)}) // mapped
		}
		return netip.AddrFrom4([4]byte{192, 0, 2, byte(n)})
	}
	daemons := []string{"dovecot", "courier", "uw"}
	now := t0
	var restore []Grant
	for range 12 {
		g := Grant{Addr: addr(), Expires: now.Add(time.Duration(rng.IntN(40)-10) * time.Minute), User: "r", Daemon: "dovecot", Host: "old"}
		if rng.IntN(3) == 0 {
			g.Sessions = map[string]time.Time{fmt.Sprint("dovecot/", rng.IntN(20)): now.Add(-time.Duration(rng.IntN(40)) * time.Minute)}
		}
		restore = append(restore, g)
	}
	var refRestore []refGrant
	for _, g := range restore {
		refRestore = append(refRestore, refGrant{Addr: g.Addr, Expires: g.Expires, User: g.User, Daemon: g.Daemon, Host: g.Host, Sessions: g.Sessions})
	}
	if a, b := tab.Restore(restore, now), ref.Restore(refRestore, now); a != b {
		t.Fatalf("Restore = %d, reference %d", a, b)
	}
	same(t, "restore", tab, ref)
	for step := range 2000 {
		now = now.Add(time.Duration(rng.IntN(90)) * time.Second)
		what := ""
		switch r := rng.IntN(100); {
		case r < 50:
			d := daemons[rng.IntN(len(daemons))]
			g := Grant{Addr: addr(), User: fmt.Sprint("u", rng.IntN(5), strings.Repeat("é", rng.IntN(3)*rng.IntN(20))), Daemon: d, Host: fmt.Sprint("mx", rng.IntN(3))}
			session := ""
			if rng.IntN(2) == 0 {
				session = fmt.Sprint(rng.IntN(30))
			}
			what = fmt.Sprintf("Login(%v, %q)", g.Addr, session)
			a := tab.Login(g, session, now)
			b := ref.Login(refGrant{Addr: g.Addr, User: g.User, Daemon: g.Daemon, Host: g.Host}, session, now)
			if a != b {
				t.Fatalf("step %d: %s = %v, reference %v", step, what, a, b)
			}
		case r < 70:
			d, s := daemons[rng.IntN(len(daemons))], fmt.Sprint(rng.IntN(30))
			what = fmt.Sprintf("Logout(%s, %s)", d, s)
			a, ok := tab.Logout(d, s, now)
			b, refOK := ref.Logout(d, s, now)
			if a != b || ok != refOK {
				t.Fatalf("step %d: %s = %v %v, reference %v %v", step, what, a, ok, b, refOK)
			}
		case r < 97:
			what = "Expire"
			a, b := tab.Expire(now), ref.Expire(now)
			if fmt.Sprint(a) != fmt.Sprint(grantsOf(b)) {
				t.Fatalf("step %d: Expire = %v\nreference %v", step, a, grantsOf(b))
			}
		default:
			p := netip.PrefixFrom(addr(), 30+rng.IntN(3)).Masked()
			what = fmt.Sprint("SetExclude ", p)
			a, b := tab.SetExclude([]netip.Prefix{p}), ref.SetExclude([]netip.Prefix{p})
			if fmt.Sprint(a) != fmt.Sprint(grantsOf(b)) {
				t.Fatalf("step %d: %s = %v\nreference %v", step, what, a, grantsOf(b))
			}
		}
		same(t, fmt.Sprintf("step %d (%s)", step, what), tab, ref)
	}
}

func grantsOf(rs []refGrant) []Grant {
	out := make([]Grant, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.grant())
	}
	return out
}

func same(t *testing.T, when string, tab *Table, ref *refTable) {
	t.Helper()
	a, b := tab.Grants(), grantsOf(ref.Grants())
	if len(a) != len(b) {
		t.Fatalf("%s: %d grants, reference %d:\n%v\n%v", when, len(a), len(b), a, b)
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Addr != y.Addr || !x.Expires.Equal(y.Expires) || x.User != y.User || x.Daemon != y.Daemon || x.Host != y.Host || len(x.Sessions) != len(y.Sessions) {
			t.Fatalf("%s: grant %d = %+v, reference %+v", when, i, x, y)
		}
		for k, at := range y.Sessions {
			if got, ok := x.Sessions[k]; !ok || !got.Equal(at) {
				t.Fatalf("%s: grant %v session %s = %v, reference %v", when, x.Addr, k, got, at)
			}
		}
	}
	n1, ok1 := tab.NextExpiry()
	n2, ok2 := ref.NextExpiry()
	if ok1 != ok2 || !n1.Equal(n2) {
		t.Fatalf("%s: NextExpiry = %v %v, reference %v %v", when, n1, ok1, n2, ok2)
	}
	m1, c1 := tab.Versions()
	m2, c2 := ref.Versions()
	if m1 != m2 || c1 != c2 || tab.Evictions() != ref.Evictions() || tab.Len() != ref.Len() {
		t.Fatalf("%s: versions %d/%d evictions %d len %d, reference %d/%d %d %d", when, m1, c1, tab.Evictions(), tab.Len(), m2, c2, ref.Evictions(), ref.Len())
	}
}

// TestIndexUnderChurn: the open-addressing index, started tiny so probes
// wrap and every deletion shifts keys back, finds exactly the grants in the
// table through a long run of logins, evictions and expiries.
func TestIndexUnderChurn(t *testing.T) {
	tab := NewTable(TableConfig{Grace: time.Minute, MaxEntries: 3000})
	tab.index.buckets = make([]int32, 8)
	rng := rand.New(rand.NewPCG(5, 6))
	in := map[netip.Addr]bool{}
	now := t0
	for step := range 200000 {
		now = now.Add(time.Duration(rng.IntN(5)) * time.Millisecond)
		a := netip.AddrFrom4([4]byte{10, 0, byte(rng.IntN(20)), byte(rng.IntN(256))})
		tab.Login(Grant{Addr: a}, "", now)
		if step%1000 == 0 {
			tab.Expire(now)
		}
		if step%20000 == 0 {
			clear(in)
			for _, g := range tab.Grants() {
				in[g.Addr] = true
			}
			if tab.index.n != len(in) {
				t.Fatalf("step %d: index holds %d, table %d", step, tab.index.n, len(in))
			}
			for i := range 20 * 256 {
				a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
				if _, ok := tab.get(a.As16()); ok != in[a] {
					t.Fatalf("step %d: get(%v) = %v, want %v", step, a, ok, in[a])
				}
			}
		}
	}
}

// TestOffHeapFreed: growing the index, the expiry heap and the user-name
// arena returns the arrays they outgrew, so a table holds exactly its
// current arrays outside the Go heap, and all of them go when it does.
func TestOffHeapFreed(t *testing.T) {
	tab := NewTable(TableConfig{Grace: time.Hour, MaxEntries: 50000})
	for i := range 200000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		// Long names, renamed often: the arena is compacted many times.
		tab.Login(Grant{Addr: a, User: strings.Repeat("x", 200) + fmt.Sprint(i), Daemon: "dovecot"}, "", t0.Add(time.Duration(i)))
	}
	if want := len(tab.chunks) + 1 + 1 + len(tab.users.blocks); tab.mem.Mappings() != want {
		t.Errorf("%d mappings outside the Go heap, want %d: %d chunks, the index, the expiry heap, %d arena blocks",
			tab.mem.Mappings(), want, len(tab.chunks), len(tab.users.blocks))
	}
	tab.Release()
	if tab.mem.Mappings() != 0 {
		t.Errorf("%d mappings left after Release", tab.mem.Mappings())
	}
}

// TestUserArena: user names live in one arena that is compacted as names
// die; through a long churn of logins, renames and evictions every grant
// keeps its own name and the arena stays a small multiple of the live
// names. An over-long name is cut at a character boundary.
func TestUserArena(t *testing.T) {
	tab := NewTable(TableConfig{Grace: time.Hour, MaxEntries: 1000})
	want := map[netip.Addr]string{}
	for i := range 200000 {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i % 1500 >> 8), byte(i % 1500)})
		user := fmt.Sprintf("user%d@example.net", i)
		tab.Login(Grant{Addr: a, User: user, Daemon: "dovecot"}, "", t0)
		want[a] = user
	}
	live := 0
	for _, g := range tab.Grants() {
		if g.User != want[g.Addr] {
			t.Fatalf("%v: user %q, want %q", g.Addr, g.User, want[g.Addr])
		}
		live += len(g.User)
	}
	held := 0
	for _, b := range tab.users.blocks {
		held += len(b)
	}
	if held > 2*live+64<<10 {
		t.Errorf("arena holds %d bytes for %d bytes of live names", held, live)
	}
	long := strings.Repeat("a", maxUserLen-1) + "é" + "tail"
	tab.Login(Grant{Addr: netip.MustParseAddr("192.0.2.1"), User: long, Daemon: "dovecot"}, "", t0)
	if g, _ := tab.Lookup(netip.MustParseAddr("192.0.2.1")); g.User != strings.Repeat("a", maxUserLen-1) {
		t.Errorf("long name kept as %d bytes %q…, want cut before the two-byte character", len(g.User), g.User[maxUserLen-8:])
	}
}

// TestTableOutsideGoHeap: a table's grants cost the Go heap next to
// nothing, so GOGC's headroom (relaygate runs at 50%) does not multiply
// them: a million grants with 64-byte names were 154 MiB of heap, which the
// collector let grow to 330 MiB of RSS.
func TestTableOutsideGoHeap(t *testing.T) {
	const n = 100000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tab := NewTable(TableConfig{Grace: time.Hour, MaxEntries: n})
	for i := range n {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 11: 1, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		tab.Login(Grant{Addr: a, User: fmt.Sprintf("firstname.middlename.lastname.%07d@mail.example-university.edu", i), Daemon: "dovecot", Host: "mx1"}, "", t0)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if heap := int64(after.HeapAlloc) - int64(before.HeapAlloc); heap > 1<<20 {
		t.Errorf("%d grants hold %d bytes of Go heap, want under 1 MiB", n, heap)
	}
	if g, ok := tab.Lookup(netip.MustParseAddr("2001:db8::1:1:869f")); !ok || g.User != "firstname.middlename.lastname.0099999@mail.example-university.edu" {
		t.Errorf("the last grant: %+v, %v", g, ok)
	}
	runtime.KeepAlive(tab)
}

func TestTableGraceAndExtension(t *testing.T) {
	tab := NewTable(TableConfig{Grace: 30 * time.Minute})
	if out := tab.Login(grant("192.0.2.10"), "", t0); out != Added {
		t.Fatalf("first login = %v, want added", out)
	}
	m1, _ := tab.Versions()
	if out := tab.Login(grant("192.0.2.10"), "", t0.Add(20*time.Minute)); out != Extended {
		t.Fatalf("repeat login = %v, want extended", out)
	}
	if m2, _ := tab.Versions(); m2 != m1 {
		t.Errorf("a repeat login changed the membership version (%d → %d); the map would be rewritten for nothing", m1, m2)
	}
	if g, ok := tab.Lookup(netip.MustParseAddr("::ffff:192.0.2.10")); !ok || !g.Expires.Equal(t0.Add(50*time.Minute)) || g.User != "alice" {
		t.Errorf("Lookup of the mapped form = %+v %v, want the grant until the second login's grace", g, ok)
	}
	if _, ok := tab.Lookup(netip.MustParseAddr("192.0.2.11")); ok {
		t.Errorf("Lookup found an address never granted")
	}
	if gone := tab.Expire(t0.Add(30 * time.Minute)); len(gone) != 0 {
		t.Fatalf("extended grant expired at the first login's deadline: %v", gone)
	}
	if gone := tab.Expire(t0.Add(50*time.Minute - time.Nanosecond)); len(gone) != 0 {
		t.Fatalf("expired before grace ran out: %v", gone)
	}
	gone := tab.Expire(t0.Add(50 * time.Minute))
	if len(gone) != 1 || gone[0].Addr != netip.MustParseAddr("192.0.2.10") {
		t.Fatalf("Expire at grace = %v, want the one grant", gone)
	}
	if tab.Len() != 0 {
		t.Fatalf("table not empty after expiry")
	}
}

func TestTableExcludesAndUnmaps(t *testing.T) {
	tab := NewTable(TableConfig{Grace: time.Minute, Exclude: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:bad::/48")}})
	for _, a := range []string{"10.1.2.3", "::ffff:10.9.9.9", "2001:db8:bad::1"} {
		if out := tab.Login(grant(a), "", t0); out != Excluded {
			t.Errorf("Login(%s) = %v, want excluded", a, out)
		}
	}
	if out := tab.Login(grant("::ffff:192.0.2.1"), "", t0); out != Added {
		t.Fatalf("mapped login = %v", out)
	}
	gs := tab.Grants()
	if len(gs) != 1 || gs[0].Addr != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("grants = %v, want only 192.0.2.1 unmapped", gs)
	}
}

func TestRestoreSkipsExpiredAndExcluded(t *testing.T) {
	tab := NewTable(TableConfig{Grace: time.Minute, Exclude: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}})
	in := []Grant{
		{Addr: netip.MustParseAddr("192.0.2.1"), Expires: t0.Add(time.Hour)},
		{Addr: netip.MustParseAddr("192.0.2.2"), Expires: t0},
		{Addr: netip.MustParseAddr("198.51.100.1"), Expires: t0.Add(time.Hour)},
	}
	if n := tab.Restore(in, t0); n != 1 {
		t.Fatalf("Restore = %d, want 1", n)
	}
	if g := tab.Grants(); len(g) != 1 || !g[0].Expires.Equal(t0.Add(time.Hour)) {
		t.Fatalf("restored %v; want 192.0.2.1 with its saved expiry", g)
	}
}
