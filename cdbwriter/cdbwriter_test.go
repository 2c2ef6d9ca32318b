package cdbwriter

import (
	"errors"
	"fmt"
	"io"
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

	"github.com/relaygate/relaygate/internal/grants"
	"github.com/relaygate/relaygate/internal/testutil"
)

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func grant(addr string) grants.Grant {
	return grants.Grant{Addr: netip.MustParseAddr(addr), User: "alice", Daemon: "dovecot", Host: "mx1"}
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

func TestWriteMapIsReadableByCDBAndPostmap(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pbs.cdb")
	gs := []grants.Grant{grant("192.0.2.10"), grant("2001:db8::5"), grant("::ffff:198.51.100.7")}
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
		if testutil.InCI() {
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
	if err := WriteMap(path, []grants.Grant{grant("192.0.2.1")}); err != nil {
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
	if err := WriteMap(blocked, []grants.Grant{grant("192.0.2.2")}); err == nil {
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
	in := []grants.Grant{
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

// testConfig is the Config most tests use: the map and the state file in
// dir, a -flush of a second, the log in the test's output and in logs.
func testConfig(t testing.TB, dir string, logs ...io.Writer) Config {
	w := zerolog.MultiLevelWriter(append([]io.Writer{zerolog.NewTestWriter(t)}, logs...)...)
	return Config{
		MapPath:   filepath.Join(dir, "pbs.cdb"),
		StatePath: filepath.Join(dir, "pbs.state"),
		Flush:     time.Second,
		Logger:    zerolog.New(w),
	}
}

// startService is a Service of cfg with a table of tc, started at t0.
func startService(t testing.TB, cfg Config, tc grants.TableConfig) *Service {
	t.Helper()
	svc := NewService(cfg, grants.NewTable(tc))
	if err := svc.Start(t0); err != nil {
		t.Fatal(err)
	}
	return svc
}

// newTestService is a Service of testConfig and grace, started at t0.
func newTestService(t testing.TB, dir string, grace time.Duration) *Service {
	t.Helper()
	return startService(t, testConfig(t, dir), grants.TableConfig{Grace: grace})
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
	svc.login(grant("192.0.2.10"), "", t1)
	next := svc.tick(t1)
	if keys := mapKeys(t, dir); !slices.Equal(keys, []string{"192.0.2.10"}) {
		t.Fatalf("after login map = %v", keys)
	}
	// The only thing that can wake the service now is its own timer: it
	// must ask to run exactly when the grant expires.
	if !next.Equal(t1.Add(5 * time.Second)) {
		t.Fatalf("next wake = %v, want the expiry %v", next, t1.Add(5*time.Second))
	}
	if next := svc.tick(next); !next.IsZero() {
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
	svc.login(grant("192.0.2.1"), "", t0.Add(100*time.Millisecond))
	svc.login(grant("192.0.2.2"), "", t0.Add(200*time.Millisecond))
	svc.login(grant("192.0.2.3"), "", t0.Add(300*time.Millisecond))
	next := svc.tick(t0.Add(300 * time.Millisecond))
	if got := svc.stats.Publishes.Load(); got != pubs {
		t.Fatalf("published again within -flush (%d publishes)", got-pubs)
	}
	if !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("next wake = %v, want lastPublish+flush", next)
	}
	svc.tick(next)
	if got := svc.stats.Publishes.Load(); got != pubs+1 {
		t.Fatalf("want exactly one more publish, got %d", got-pubs)
	}
	if keys := mapKeys(t, dir); len(keys) != 3 {
		t.Fatalf("map = %v", keys)
	}
	// A repeat login changes nothing Postfix sees: no publish.
	svc.login(grant("192.0.2.3"), "", t0.Add(5*time.Second))
	svc.tick(t0.Add(5 * time.Second))
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
	cfg := testConfig(t, dir)
	cfg.MapPath = filepath.Join(mapDir, "pbs.cdb")
	cfg.OnPublish = func(now time.Time, took time.Duration, err error) {
		heard = append(heard, fmt.Sprintf("%s ok=%t", now.Sub(t0), err == nil && took > 0))
	}
	svc := startService(t, cfg, grants.TableConfig{Grace: time.Hour})
	// Take the map directory away: publishes fail, grants stay in memory.
	hidden := mapDir + ".away"
	if err := os.Rename(mapDir, hidden); err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(time.Second)
	svc.login(grant("192.0.2.1"), "", t1)
	next := svc.tick(t1)
	if svc.stats.PublishErrors.Load() != 1 {
		t.Fatalf("publish error not counted")
	}
	if !next.After(t1) {
		t.Fatalf("retry scheduled at %v, want back-off after %v", next, t1)
	}
	next = svc.tick(next)
	if svc.stats.PublishErrors.Load() != 2 {
		t.Fatalf("publish not retried")
	}
	if err := os.Rename(hidden, mapDir); err != nil {
		t.Fatal(err)
	}
	svc.tick(next)
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
	svc.login(grant("192.0.2.1"), "", t0)
	svc.login(grant("2001:db8::1"), "", t0)
	svc.tick(t0.Add(time.Second))
	// No Shutdown: this is what a kill -9 leaves behind.
	again := newTestService(t, dir, 30*time.Minute)
	if got := again.table.Len(); got != 2 {
		t.Fatalf("restored %d grants, want 2", got)
	}
	if keys := mapKeys(t, dir); len(keys) != 2 {
		t.Fatalf("map after restart = %v", keys)
	}
	// And the restored grants still expire on their original schedule.
	again.tick(t0.Add(30 * time.Minute))
	if keys := mapKeys(t, dir); len(keys) != 0 {
		t.Fatalf("restored grants outlived their expiry: %v", keys)
	}
}

func TestSessionsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	svc := newTestService(t, dir, 30*time.Minute)
	svc.login(grant("192.0.2.10"), "S1", t0)
	svc.tick(t0.Add(time.Second))
	again := newTestService(t, dir, 30*time.Minute)
	// Hours later, past grace: still granted because the session is open.
	later := t0.Add(5 * time.Hour)
	again.tick(later)
	if keys := mapKeys(t, dir); len(keys) != 1 {
		t.Fatalf("open session lost across restart: map %v", keys)
	}
	again.logout("dovecot", "alice", "S1", later)
	again.tick(later.Add(30 * time.Minute))
	if keys := mapKeys(t, dir); len(keys) != 0 {
		t.Fatalf("not expired after logout + grace: %v", keys)
	}
}
