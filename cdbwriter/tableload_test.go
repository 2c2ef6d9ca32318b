package cdbwriter

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/grants"
)

// TestTableLoadMatchesRestore holds a start's load of the state file
// straight into the table (loadFile, grants.Loader) to what it replaced: LoadState,
// grantableOnly and Restore. Random state files repeat addresses (last
// line wins), remove them, let them expire, share session ids, hold
// ungrantable, excluded and IPv4-mapped addresses, expiries UnixNano
// cannot hold, damaged lines, and more grants than -max-entries; the two
// tables must then agree on every grant, the eviction order, the expiry
// schedule, what the next state save writes, the counters, the addresses
// accounted for, and the counts a start logs.
func TestTableLoadMatchesRestore(t *testing.T) {
	for seed := range uint64(300) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { checkTableLoad(t, seed) })
	}
}

func checkTableLoad(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 11))
	now := t0
	addrs := make([]netip.Addr, 0, 40)
	for n := range 40 {
		switch {
		case n%11 == 0:
			addrs = append(addrs, netip.AddrFrom4([4]byte{0, 0, 0, byte(n)})) // ungrantable
		case n%5 == 0:
			addrs = append(addrs, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(n)}))
		case n%7 == 0:
			addrs = append(addrs, netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 192, 0, 2, byte(n)})) // mapped
		case n%13 == 0:
			addrs = append(addrs, netip.AddrFrom4([4]byte{198, 51, 100, byte(n)})) // excluded
		default:
			addrs = append(addrs, netip.AddrFrom4([4]byte{192, 0, 2, byte(n)}))
		}
	}
	var b strings.Builder
	b.WriteString(stateHeader + "\n")
	lines := 1 + rng.IntN(60)
	for k := range lines {
		a := addrs[rng.IntN(len(addrs))]
		if rng.IntN(4) == 0 {
			a = addrs[rng.IntN(4)] // a few addresses again and again
		}
		var expires time.Time
		switch r := rng.IntN(20); {
		case r < 3:
			expires = tombstone
		case r == 3:
			expires = time.Date(2999, 1, 1, 0, 0, rng.IntN(3), 0, time.UTC) // beyond UnixNano
		case r == 4:
			expires = time.Date(1600, 1, 1, 0, 0, rng.IntN(3), 0, time.UTC)
		case r < 8:
			expires = now.Add(time.Duration(rng.IntN(3)) * time.Minute) // ties
		default:
			expires = now.Add(time.Duration(rng.IntN(60)-15) * time.Minute)
		}
		var ss []grants.OpenSession
		for range rng.IntN(3) * rng.IntN(2) {
			ss = append(ss, grants.OpenSession{Key: fmt.Sprint("dovecot/", rng.IntN(6)), Opened: now.Add(-time.Duration(rng.IntN(90)) * time.Minute)})
		}
		slices.SortFunc(ss, func(x, y grants.OpenSession) int { return strings.Compare(x.Key, y.Key) })
		ss = slices.CompactFunc(ss, func(x, y grants.OpenSession) bool { return x.Key == y.Key })
		line := string(appendStateLine(nil, a, expires, fmt.Sprint("u", rng.IntN(4)), "dovecot", fmt.Sprint("mx", rng.IntN(2)), ss))
		switch rng.IntN(30) {
		case 0:
			line = "not a grant\n"
		case 1:
			line = strings.Replace(line, `"addr"`, `"addr" `, 1) // encoding/json's path
		}
		if k == lines-1 && rng.IntN(4) == 0 {
			line = line[:len(line)/2] // torn
		}
		b.WriteString(line)
	}
	path := filepath.Join(t.TempDir(), "s.state")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := grants.TableConfig{Grace: 10 * time.Minute, MaxSession: 30 * time.Minute, MaxEntries: 1 + rng.IntN(24),
		Exclude: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
	lim := stateLimits{maxBytes: 1 << 20}
	if rng.IntN(10) == 0 {
		lim.maxBytes = int64(rng.IntN(b.Len()))
	}

	ref := grants.NewTable(cfg)
	gs, at, refErr := loadState(os.OpenFile, path, lim)
	readable := len(gs)
	gs, ungrantable := grantableOnly(gs, defaultGrantable)
	restored := ref.Restore(gs, now)
	want := grants.LoadCounts{Readable: readable, Ungrantable: ungrantable, Restorable: len(gs), Restored: restored}

	tab := grants.NewTable(cfg)
	got, accounted, err := loadFile(os.OpenFile, path, lim, tab, defaultGrantable, now)

	if !reflect.DeepEqual(err, refErr) {
		t.Fatalf("load error %v, LoadState's %v", err, refErr)
	}
	if got != want {
		t.Fatalf("counts %+v, LoadState and Restore's %+v", got, want)
	}
	for _, a := range addrs {
		if _, ok := at[a.Unmap()]; ok != accounted(a.Unmap()) {
			t.Fatalf("accounted(%v) = %v, LoadState's %v", a, !ok, ok)
		}
	}
	sameTables(t, "loaded", tab, ref)
	// The eviction order: fill both up with new logins, which evict every
	// loaded grant in turn; the schedule: expire both minute by minute.
	for k := range 2 * cfg.MaxEntries {
		g := grants.Grant{Addr: netip.AddrFrom4([4]byte{203, 0, 113, byte(k)}), User: "n", Daemon: "dovecot"}
		if tab.Login(g, "", now) != ref.Login(g, "", now) {
			t.Fatalf("Login %v differs", g.Addr)
		}
		sameTables(t, fmt.Sprint("login ", k), tab, ref)
	}
	for range 150 {
		now = now.Add(time.Minute)
		if a, b := tab.Expire(now), ref.Expire(now); !reflect.DeepEqual(a, b) {
			t.Fatalf("Expire(%v) = %v, Restore's table %v", now, a, b)
		}
		sameTables(t, fmt.Sprint("expire ", now), tab, ref)
	}
}

// sameTables requires two tables to hold the same grants, with the same
// next expiry, counters, and unsaved changes. (The eviction order shows
// when logins fill them up.)
func sameTables(t *testing.T, when string, tab, ref *grants.Table) {
	t.Helper()
	if a, b := tab.Grants(), ref.Grants(); !reflect.DeepEqual(a, b) {
		t.Fatalf("%s: grants\n%v\nRestore's\n%v", when, a, b)
	}
	an, aok := tab.NextExpiry()
	bn, bok := ref.NextExpiry()
	if !an.Equal(bn) || aok != bok {
		t.Fatalf("%s: next expiry %v %v, Restore's %v %v", when, an, aok, bn, bok)
	}
	if a, b := unsavedOf(tab), unsavedOf(ref); a != b {
		t.Fatalf("%s: unsaved\n%s\nRestore's\n%s", when, a, b)
	}
	am, ac := tab.Versions()
	bm, bc := ref.Versions()
	if am != bm || ac != bc || tab.Evictions() != ref.Evictions() || tab.Unsaved() != ref.Unsaved() {
		t.Fatalf("%s: members %d changes %d evictions %d unsaved %d, Restore's %d %d %d %d",
			when, am, ac, tab.Evictions(), tab.Unsaved(), bm, bc, ref.Evictions(), ref.Unsaved())
	}
}

// unsavedOf is what the next incremental save would write, in a stable
// order.
func unsavedOf(t *grants.Table) string {
	var changed, removed []string
	t.EachUnsaved(func(r *grants.Record) {
		changed = append(changed, string(appendRecordLine(nil, r)))
	}, func(a netip.Addr) { removed = append(removed, a.String()) })
	slices.Sort(changed)
	slices.Sort(removed)
	return fmt.Sprint(removed, "\n", strings.Join(changed, ""))
}

// TestStartKeepsTheTablesGrants: a Service given a table that already has
// grants restores its state file around them, as Restore did, and does not
// carry over what either accounts for.
func TestStartKeepsTheTablesGrants(t *testing.T) {
	dir := t.TempDir()
	goodMap(t, dir, 3) // 198.51.0.1-3 in map and state
	tab := grants.NewTable(grants.TableConfig{Grace: time.Hour})
	tab.Login(grants.Grant{Addr: netip.MustParseAddr("198.51.0.1"), User: "before", Daemon: "dovecot"}, "", t0)
	tab.Login(grants.Grant{Addr: netip.MustParseAddr("192.0.2.9"), User: "before", Daemon: "dovecot"}, "", t0)
	svc := NewService(Config{MapPath: filepath.Join(dir, "pbs.cdb"), StatePath: filepath.Join(dir, "pbs.state"),
		Flush: time.Second, Stats: &Stats{}}, tab)
	if err := svc.Start(t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range tab.Grants() {
		got = append(got, Key(g.Addr)+" "+g.User)
	}
	want := []string{"192.0.2.9 before", "198.51.0.1 before", "198.51.0.2 alice", "198.51.0.3 alice"}
	if !slices.Equal(got, want) || svc.stats.CarriedOver.Load() != 0 {
		t.Fatalf("table %q, carried over %d; want %q, none", got, svc.stats.CarriedOver.Load(), want)
	}
}
