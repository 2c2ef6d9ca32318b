package cdbwriter

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/colinmarc/cdb"
	"github.com/rs/zerolog"
)

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func grant(addr string) Grant {
	return Grant{Addr: netip.MustParseAddr(addr), User: "alice", Daemon: "dovecot", Host: "mx1"}
}

func TestKeyIsPostfixForm(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.10":           "192.0.2.10",
		"::ffff:192.0.2.10":    "192.0.2.10",
		"2001:DB8:0:0:0:0:0:5": "2001:db8::5",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2:3:4:5:6",
		"::1":                  "::1",
	} {
		if got := Key(netip.MustParseAddr(in)); got != want {
			t.Errorf("Key(%s) = %q, want %q", in, got, want)
		}
	}
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
	if len(gs) != 1 || Key(gs[0].Addr) != "192.0.2.1" {
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

func TestWriteMapIsReadableByCDBAndPostmap(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pbs.cdb")
	gs := []Grant{grant("192.0.2.10"), grant("2001:db8::5"), grant("::ffff:198.51.100.7")}
	if err := WriteMap(path, gs); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("map mode %v, want 0644 so postmap -q works as non-root", fi.Mode().Perm())
	}
	db, err := cdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, k := range []string{"192.0.2.10", "2001:db8::5", "198.51.100.7"} {
		v, err := db.Get([]byte(k))
		if err != nil || string(v) != "OK" {
			t.Errorf("Get(%q) = %q, %v; want OK (no trailing NUL)", k, v, err)
		}
	}
	if v, _ := db.Get([]byte("::ffff:198.51.100.7")); v != nil {
		t.Errorf("mapped form written as a key")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}

	postmap := requirePostmap(t)
	if postmap == "" {
		return
	}
	base := strings.TrimSuffix(path, ".cdb")
	for _, q := range []string{"192.0.2.10", "2001:DB8::5", "198.51.100.7"} {
		out, err := exec.Command(postmap, "-q", q, "cdb:"+base).Output()
		if err != nil || strings.TrimSpace(string(out)) != "OK" {
			t.Errorf("postmap -q %s = %q, %v; want OK", q, out, err)
		}
	}
	if err := exec.Command(postmap, "-q", "192.0.2.11", "cdb:"+base).Run(); err == nil {
		t.Errorf("postmap found an address that was never granted")
	}
}

// requirePostmap returns postmap's path. Under CI the real Postfix must be
// there; elsewhere the check is skipped with a note.
func requirePostmap(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("postmap")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("postmap not installed (apt-get install postfix postfix-cdb): %v", err)
		}
		t.Logf("postmap not installed; skipping the check with real Postfix")
		return ""
	}
	return p
}

func TestWriteMapFailureKeepsOldMap(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pbs.cdb")
	if err := WriteMap(path, []Grant{grant("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}
	// A directory where the map should be makes the rename fail after the
	// temporary file was fully written.
	blocked := filepath.Join(dir, "blocked.cdb")
	if err := os.Mkdir(blocked, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(blocked, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteMap(blocked, []Grant{grant("192.0.2.2")}); err == nil {
		t.Fatal("WriteMap over a non-empty directory succeeded")
	}
	keys, err := ReadMap(path)
	if err != nil || !slices.Equal(keys, []string{"192.0.2.1"}) {
		t.Fatalf("old map = %v, %v", keys, err)
	}
	requireNoTempFiles(t, dir)
}

// requireNoTempFiles fails the test for every temporary map or state file
// left in dir.
func requireNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestStateRoundTripAndDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pbs.state")
	in := []Grant{
		{Addr: netip.MustParseAddr("192.0.2.1"), Expires: t0, User: "a b\n\"c\"", Daemon: "courier", Host: "mx1"},
		{Addr: netip.MustParseAddr("2001:db8::1"), Expires: t0.Add(time.Second)},
	}
	if err := SaveState(path, in); err != nil {
		t.Fatal(err)
	}
	out, err := LoadState(path)
	if err != nil || len(out) != 2 || out[0].User != in[0].User || !out[1].Expires.Equal(in[1].Expires) {
		t.Fatalf("LoadState = %v, %v", out, err)
	}

	data, _ := os.ReadFile(path)
	damaged := append(append([]byte{}, data[:len(data)-10]...), []byte("\n{not json\n\x00\x01garbage")...)
	if err := os.WriteFile(path, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = LoadState(path)
	var d *StateDamage
	if !errors.As(err, &d) || len(out) != 1 || out[0].Addr != in[0].Addr {
		t.Fatalf("LoadState(damaged) = %v, %v; want the first grant and a StateDamage", out, err)
	}

	if out, err := LoadState(filepath.Join(t.TempDir(), "missing")); err != nil || out != nil {
		t.Fatalf("missing state = %v, %v; want nothing, no error", out, err)
	}
}

func newTestService(t *testing.T, dir string, grace time.Duration) *Service {
	t.Helper()
	svc := NewService(Config{
		MapPath:   filepath.Join(dir, "pbs.cdb"),
		StatePath: filepath.Join(dir, "pbs.state"),
		Flush:     time.Second,
		Logger:    zerolog.New(zerolog.NewTestWriter(t)),
	}, NewTable(TableConfig{Grace: grace}))
	if err := svc.Start(t0); err != nil {
		t.Fatal(err)
	}
	return svc
}

func mapKeys(t *testing.T, dir string) []string {
	t.Helper()
	keys, err := ReadMap(filepath.Join(dir, "pbs.cdb"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

func TestServicePublishesEmptyMapAtStart(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, tempPrefix+"pbs.cdb-123"), []byte("junk"), 0o600)
	newTestService(t, dir, time.Minute)
	if keys := mapKeys(t, dir); len(keys) != 0 {
		t.Fatalf("initial map = %v, want empty", keys)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			t.Errorf("stale temporary file not removed: %s", e.Name())
		}
	}
}

func TestServiceExpiresWithoutTraffic(t *testing.T) {
	dir := t.TempDir()
	svc := newTestService(t, dir, 5*time.Second)
	t1 := t0.Add(time.Second) // one -flush after the startup publish
	svc.Login(grant("192.0.2.10"), "", t1)
	next := svc.Tick(t1)
	if keys := mapKeys(t, dir); !slices.Equal(keys, []string{"192.0.2.10"}) {
		t.Fatalf("after login map = %v", keys)
	}
	// The only thing that can wake the service now is its own timer: it
	// must ask to run exactly when the grant expires.
	if !next.Equal(t1.Add(5 * time.Second)) {
		t.Fatalf("next wake = %v, want the expiry %v", next, t1.Add(5*time.Second))
	}
	if next := svc.Tick(next); !next.IsZero() {
		t.Fatalf("after expiry next wake = %v, want none", next)
	}
	if keys := mapKeys(t, dir); len(keys) != 0 {
		t.Fatalf("after grace map = %v, want empty", keys)
	}
}

func TestServiceCoalescesPublishes(t *testing.T) {
	dir := t.TempDir()
	svc := newTestService(t, dir, time.Hour)
	pubs := svc.stats.Publishes.Load() // the startup publish at t0
	svc.Login(grant("192.0.2.1"), "", t0.Add(100*time.Millisecond))
	svc.Login(grant("192.0.2.2"), "", t0.Add(200*time.Millisecond))
	svc.Login(grant("192.0.2.3"), "", t0.Add(300*time.Millisecond))
	next := svc.Tick(t0.Add(300 * time.Millisecond))
	if got := svc.stats.Publishes.Load(); got != pubs {
		t.Fatalf("published again within -flush (%d publishes)", got-pubs)
	}
	if !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("next wake = %v, want lastPublish+flush", next)
	}
	svc.Tick(next)
	if got := svc.stats.Publishes.Load(); got != pubs+1 {
		t.Fatalf("want exactly one more publish, got %d", got-pubs)
	}
	if keys := mapKeys(t, dir); len(keys) != 3 {
		t.Fatalf("map = %v", keys)
	}
	// A repeat login changes nothing Postfix sees: no publish.
	svc.Login(grant("192.0.2.3"), "", t0.Add(5*time.Second))
	svc.Tick(t0.Add(5 * time.Second))
	if got := svc.stats.Publishes.Load(); got != pubs+1 {
		t.Fatalf("a repeat login republished the map")
	}
}

func TestServiceRetriesFailedPublish(t *testing.T) {
	dir := t.TempDir()
	mapDir := filepath.Join(dir, "maps")
	os.Mkdir(mapDir, 0o755)
	// OnPublish is how a caller times publishes and tracks health: it must
	// hear of every attempt, failed ones included, with the service's time.
	var heard []string
	svc := NewService(Config{
		MapPath:   filepath.Join(mapDir, "pbs.cdb"),
		StatePath: filepath.Join(dir, "pbs.state"),
		Flush:     time.Second,
		Logger:    zerolog.New(zerolog.NewTestWriter(t)),
		OnPublish: func(now time.Time, took time.Duration, err error) {
			heard = append(heard, fmt.Sprintf("%s ok=%t", now.Sub(t0), err == nil && took > 0))
		},
	}, NewTable(TableConfig{Grace: time.Hour}))
	if err := svc.Start(t0); err != nil {
		t.Fatal(err)
	}
	// Take the map directory away: publishes fail, grants stay in memory.
	hidden := mapDir + ".away"
	if err := os.Rename(mapDir, hidden); err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(time.Second)
	svc.Login(grant("192.0.2.1"), "", t1)
	next := svc.Tick(t1)
	if svc.stats.PublishErrors.Load() != 1 {
		t.Fatalf("publish error not counted")
	}
	if !next.After(t1) {
		t.Fatalf("retry scheduled at %v, want back-off after %v", next, t1)
	}
	next = svc.Tick(next)
	if svc.stats.PublishErrors.Load() != 2 {
		t.Fatalf("publish not retried")
	}
	if err := os.Rename(hidden, mapDir); err != nil {
		t.Fatal(err)
	}
	svc.Tick(next)
	keys, err := ReadMap(filepath.Join(mapDir, "pbs.cdb"))
	if err != nil || !slices.Equal(keys, []string{"192.0.2.1"}) {
		t.Fatalf("after the fault cleared map = %v, %v", keys, err)
	}
	// Start, the failed publish, its retry after -flush, and the next
	// retry after twice that.
	want := []string{"0s ok=true", "1s ok=false", "2s ok=false", "4s ok=true"}
	if !slices.Equal(heard, want) {
		t.Errorf("OnPublish heard %q, want %q", heard, want)
	}
}

func TestServiceRestoresAfterRestart(t *testing.T) {
	dir := t.TempDir()
	svc := newTestService(t, dir, 30*time.Minute)
	svc.Login(grant("192.0.2.1"), "", t0)
	svc.Login(grant("2001:db8::1"), "", t0)
	svc.Tick(t0.Add(time.Second))
	// No Shutdown: this is what a kill -9 leaves behind.
	again := newTestService(t, dir, 30*time.Minute)
	if got := again.Table().Len(); got != 2 {
		t.Fatalf("restored %d grants, want 2", got)
	}
	if keys := mapKeys(t, dir); len(keys) != 2 {
		t.Fatalf("map after restart = %v", keys)
	}
	// And the restored grants still expire on their original schedule.
	again.Tick(t0.Add(30 * time.Minute))
	if keys := mapKeys(t, dir); len(keys) != 0 {
		t.Fatalf("restored grants outlived their expiry: %v", keys)
	}
}

func TestRunDrainsAndWritesOnClose(t *testing.T) {
	dir := t.TempDir()
	svc := newTestService(t, dir, time.Hour)
	in := make(chan Event, 2)
	in <- Event{Kind: EventLogin, Grant: grant("192.0.2.1"), At: time.Now()}
	in <- Event{Kind: EventLogin, Grant: grant("192.0.2.2"), At: time.Now()}
	close(in)
	if err := svc.Run(in, nil, time.Now); err != nil {
		t.Fatal(err)
	}
	if keys := mapKeys(t, dir); len(keys) != 2 {
		t.Fatalf("map after Run = %v", keys)
	}
}

// TestZeroEventNeverGrants: an Event whose Kind was left out (the zero
// value) used to be a login; it must grant nothing.
func TestZeroEventNeverGrants(t *testing.T) {
	dir := t.TempDir()
	svc := newTestService(t, dir, time.Hour)
	in := make(chan Event, 2)
	in <- Event{Grant: grant("192.0.2.1"), At: time.Now()}
	in <- Event{}
	close(in)
	if err := svc.Run(in, nil, time.Now); err != nil {
		t.Fatal(err)
	}
	if keys := mapKeys(t, dir); len(keys) != 0 {
		t.Fatalf("events without a kind granted %v", keys)
	}
}

// TestRunServesReads: a read sent to Run sees the table as the events
// before it left it, on Run's goroutine (the race detector would object
// otherwise).
func TestRunServesReads(t *testing.T) {
	svc := newTestService(t, t.TempDir(), time.Hour)
	in := make(chan Event)
	reads := make(chan func(*Table))
	done := make(chan error, 1)
	go func() { done <- svc.Run(in, reads, time.Now) }()
	in <- Event{Kind: EventLogin, Grant: grant("192.0.2.1"), At: time.Now()}
	in <- Event{Kind: EventLogin, Grant: grant("2001:db8::1"), At: time.Now()}
	got := make(chan []Grant)
	reads <- func(tb *Table) { got <- tb.Grants() }
	if grants := <-got; len(grants) != 2 {
		t.Errorf("read saw %d grants, want 2: %v", len(grants), grants)
	}
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
