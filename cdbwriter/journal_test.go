package cdbwriter

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/internal/grants"
)

func stateLines(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(data, []byte("\n")) - 1
}

// TestStateAppendsChanges: after the first whole file, a save appends only
// what changed; a removed grant gets a tombstone, so a restart neither
// loses a grant nor brings back a removed one.
func TestStateAppendsChanges(t *testing.T) {
	dir := t.TempDir()
	svc := newTestService(t, dir, time.Hour)
	state := filepath.Join(dir, "pbs.state")
	for i := 1; i <= 3; i++ {
		svc.login(grant(fmt.Sprint("192.0.2.", i)), "", t0)
	}
	svc.login(grant("192.0.2.9"), "S9", t0)
	svc.tick(t0.Add(time.Second))
	if n := stateLines(t, state); n != 4 {
		t.Fatalf("state file has %d grant lines after 4 logins, want 4", n)
	}
	svc.login(grant("192.0.2.1"), "", t0.Add(2*time.Second)) // extended: a second line
	svc.setExclude([]netip.Prefix{netip.MustParsePrefix("192.0.2.2/32")})
	svc.tick(t0.Add(20 * time.Second))
	if n := stateLines(t, state); n != 6 {
		t.Fatalf("state file has %d grant lines, want 6: 4, the extension and a tombstone", n)
	}
	gs, err := LoadState(state)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(toUTC(gs)) != fmt.Sprint(toUTC(svc.table.Grants())) {
		t.Fatalf("state file reads as\n%v\nwant\n%v", gs, svc.table.Grants())
	}
	if err := svc.shutdown(t0.Add(21 * time.Second)); err != nil {
		t.Fatal(err)
	}
	// Shutdown leaves the appended file as it is (a whole rewrite at exit
	// would delay the exit a -takeover successor waits for); it is
	// complete.
	if n := stateLines(t, state); n != 6 {
		t.Fatalf("state file has %d grant lines after Shutdown, want the 6 appended", n)
	}
	again := newTestService(t, dir, time.Hour) // excludes nothing
	if got := fmt.Sprint(again.table.Grants()); got != fmt.Sprint(toUTC(svc.table.Grants())) {
		t.Fatalf("restored %v", got)
	}
}

// TestStateTornAppend: a crash in the middle of an append leaves a last line
// without its newline; it is not damage, and the lines before it stand.
func TestStateTornAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pbs.state")
	g := grant("192.0.2.1")
	g.Expires = t0
	if err := SaveState(path, []grants.Grant{g}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"addr":"192.0.2.2","expires":"2026-11-21T10:3`)
	f.Close()
	gs, err := LoadState(path)
	if err != nil || len(gs) != 1 || Key(gs[0].Addr) != "192.0.2.1" {
		t.Fatalf("LoadState = %v, %v; want the one whole line and no damage", gs, err)
	}
	f, _ = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("\n{not json\n")
	f.Close()
	var d *StateDamage
	if _, err := LoadState(path); !errors.As(err, &d) || d.BadLines != 2 {
		t.Fatalf("LoadState = %v; want both bad lines reported once they end in a newline", err)
	}
}

// TestStateJournalMatchesTable: under random logins, logouts, expiries and
// exclusions, the state file always reads back as the table (whenever the
// service has saved everything), and it is rewritten whole before it grows
// past about three times the table.
func TestStateJournalMatchesTable(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.Logger = cfg.Logger.Level(zerolog.WarnLevel)
	cfg.stateEvery = time.Second
	svc := NewService(cfg, grants.NewTable(grants.TableConfig{Grace: 10 * time.Minute, MaxSession: 30 * time.Minute, MaxEntries: 200}))
	svc.stateSlack = 100
	if err := svc.Start(t0); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	now, checked, rewrites, lastLines := t0, 0, 0, 0
	for step := range 3000 {
		now = now.Add(time.Duration(rng.IntN(200)) * time.Millisecond)
		a := netip.AddrFrom4([4]byte{10, 0, byte(rng.IntN(4)), byte(rng.IntN(256))})
		switch r := rng.IntN(100); {
		case r < 70:
			session := ""
			if rng.IntN(3) == 0 {
				session = fmt.Sprint(rng.IntN(100))
			}
			svc.login(grants.Grant{Addr: a, User: "u", Daemon: "dovecot", Host: "mx1"}, session, now)
		case r < 95:
			svc.logout("dovecot", "", fmt.Sprint(rng.IntN(100)), now)
		case r < 96:
			svc.setExclude([]netip.Prefix{netip.PrefixFrom(a, 28).Masked()})
		}
		svc.tick(now)
		if _, changes := svc.table.Versions(); changes != svc.savedChanges {
			continue
		}
		if svc.stateLines < lastLines {
			rewrites++
		}
		lastLines = svc.stateLines
		if limit := 2*svc.table.Len() + svc.stateSlack; svc.stateLines > limit {
			t.Fatalf("step %d: state file has %d lines for %d grants", step, svc.stateLines, svc.table.Len())
		}
		gs, err := LoadState(svc.cfg.StatePath)
		if err != nil {
			t.Fatal(err)
		}
		back := grants.NewTable(grants.TableConfig{Grace: 10 * time.Minute, MaxSession: 30 * time.Minute, MaxEntries: 200})
		back.Restore(gs, now)
		if got, want := fmt.Sprint(back.Grants()), fmt.Sprint(toUTC(svc.table.Grants())); got != want {
			t.Fatalf("step %d: state reads back as\n%s\nwant\n%s", step, got, want)
		}
		checked++
	}
	t.Logf("checked %d times, %d rewrites", checked, rewrites)
	if checked < 100 || rewrites == 0 {
		t.Fatalf("checked %d times, %d rewrites: the test no longer exercises what it should", checked, rewrites)
	}
}

// crashService is a Service whose map is never due during a test (Flush of
// a day), so whatever reaches the state file got there through the
// journal, not with a map publish.
func crashService(t *testing.T, dir string, onDurable func(uint64)) *Service {
	t.Helper()
	cfg := testConfig(t, dir)
	cfg.Flush, cfg.OnDurable = 24*time.Hour, onDurable
	return startService(t, cfg, grants.TableConfig{Grace: time.Hour, MaxSession: 24 * time.Hour})
}

// crashRead is what a restart after a kill -9 at this moment would
// restore: the state file as it is, read fresh, with no Shutdown.
func crashRead(t *testing.T, svc *Service, now time.Time) string {
	t.Helper()
	gs, err := LoadState(svc.cfg.StatePath)
	if err != nil {
		t.Fatal(err)
	}
	back := grants.NewTable(grants.TableConfig{Grace: time.Hour, MaxSession: 24 * time.Hour})
	back.Restore(gs, now)
	return fmt.Sprint(back.Grants())
}

func fmtGrants(svc *Service) string { return fmt.Sprint(toUTC(svc.table.Grants())) }

// TestCrashLosesAtMostSyncInterval: every kind of change (a new grant, a
// repeat login that only moves the expiry, a session opened and closed, an
// expiry) is in the state file syncInterval after it was made, with no map
// publish and no Shutdown, so a kill -9 then loses none of it.
func TestCrashLosesAtMostSyncInterval(t *testing.T) {
	svc := crashService(t, t.TempDir(), nil)
	now := t0
	step := func(what string, change func(now time.Time)) {
		t.Helper()
		now = now.Add(time.Second)
		change(now)
		if _, changes := svc.table.Versions(); changes == svc.savedChanges {
			t.Fatalf("%s: the test's change changed nothing, or was saved at once", what)
		}
		if next := svc.due(); next.IsZero() || next.After(now.Add(100*time.Millisecond)) {
			t.Fatalf("%s: next wake-up %v, want within 100ms of %v", what, next, now)
		}
		svc.tick(now.Add(100 * time.Millisecond))
		want := fmt.Sprint(toUTC(svc.table.Grants()))
		if got := crashRead(t, svc, now.Add(100*time.Millisecond)); got != want {
			t.Fatalf("%s: 100ms later a crash restores\n%s\nwant\n%s", what, got, want)
		}
	}
	step("login", func(now time.Time) { svc.login(grant("192.0.2.1"), "", now) })
	step("repeat login", func(now time.Time) { svc.login(grant("192.0.2.1"), "", now) })
	step("session opened", func(now time.Time) { svc.login(grant("2001:db8::7"), "S1", now) })
	step("second session", func(now time.Time) { svc.login(grant("2001:db8::7"), "S2", now) })
	step("logout", func(now time.Time) { svc.logout("dovecot", "alice", "S1", now) })
	step("exclusion", func(time.Time) {
		svc.setExclude([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")})
	})
	svc.setExclude(nil)
	step("login again", func(now time.Time) { svc.login(grant("192.0.2.3"), "", now) })
	now = now.Add(time.Hour)
	step("expiry", func(now time.Time) { svc.tick(now) })
	if svc.table.Len() != 1 {
		t.Fatalf("%d grants left, want the open session's", svc.table.Len())
	}
	if p := svc.stats.Publishes.Load(); p != 1 {
		t.Fatalf("%d map publishes, want only Start's: the journal must not wait for the map", p)
	}
}

// TestCrashJournalRandom: under random logins, logouts and exclusions,
// whatever moment a crash strikes, the state file restores every change
// older than syncInterval; and the journal is still rewritten whole before
// it grows past about three times the table.
func TestCrashJournalRandom(t *testing.T) {
	svc := crashService(t, t.TempDir(), nil)
	svc.stateSlack = 50
	rng := rand.New(rand.NewPCG(5, 6))
	now, rewrites, lastLines := t0, 0, 0
	for step := range 2000 {
		now = now.Add(time.Duration(rng.IntN(50)) * time.Millisecond)
		a := netip.AddrFrom4([4]byte{10, 0, 0, byte(rng.IntN(64))})
		switch r := rng.IntN(100); {
		case r < 70:
			session := ""
			if rng.IntN(3) == 0 {
				session = fmt.Sprint(rng.IntN(50))
			}
			svc.login(grants.Grant{Addr: a, User: "u", Daemon: "dovecot", Host: "mx1"}, session, now)
		case r < 97:
			svc.logout("dovecot", "", fmt.Sprint(rng.IntN(50)), now)
		default:
			svc.setExclude([]netip.Prefix{netip.PrefixFrom(a, 30).Masked()})
		}
		svc.tick(now)
		if rng.IntN(10) > 0 {
			continue
		}
		// The crash: what was made syncInterval ago or earlier must be on
		// disk once the service had its chance to run then.
		now = now.Add(100 * time.Millisecond)
		svc.tick(now)
		if got, want := crashRead(t, svc, now), fmt.Sprint(toUTC(svc.table.Grants())); got != want {
			t.Fatalf("step %d: a crash restores\n%s\nwant\n%s", step, got, want)
		}
		if svc.stateLines < lastLines {
			rewrites++
		}
		lastLines = svc.stateLines
		if limit := 2*svc.table.Len() + svc.stateSlack; svc.stateLines > limit {
			t.Fatalf("step %d: state file has %d lines for %d grants", step, svc.stateLines, svc.table.Len())
		}
	}
	if rewrites == 0 {
		t.Fatal("no rewrite of the whole file: the test no longer exercises compaction")
	}
}

// TestDurableSequence: Durable and OnDurable say which events a crash can
// no longer lose: an event that changed the table once its group is
// synced, one that changed nothing at once, and never one still waiting.
func TestDurableSequence(t *testing.T) {
	var told []uint64
	svc := crashService(t, t.TempDir(), func(seq uint64) { told = append(told, seq) })
	login := func(seq uint64, addr string, at time.Time) {
		svc.apply(grants.Event{Kind: grants.EventLogin, Grant: grant(addr), At: at, Seq: seq})
	}
	login(1, "192.0.2.1", t0)
	login(2, "192.0.2.2", t0.Add(50*time.Millisecond))
	svc.tick(t0.Add(99 * time.Millisecond))
	if d := svc.Durable(); d != 0 {
		t.Fatalf("Durable = %d before any sync, want 0", d)
	}
	svc.tick(t0.Add(100 * time.Millisecond))
	if d := svc.Durable(); d != 2 {
		t.Fatalf("Durable = %d after the group sync, want 2", d)
	}
	login(3, "192.0.2.3", t0.Add(200*time.Millisecond))
	svc.setExclude([]netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")})
	svc.apply(grants.Event{Kind: grants.EventLogout, Grant: grants.Grant{Daemon: "dovecot"}, Session: "none", At: t0.Add(210 * time.Millisecond), Seq: 4})
	if d := svc.Durable(); d != 2 {
		t.Fatalf("Durable = %d while login 3 is unsynced, want 2: a no-op after it is not durable before it", d)
	}
	svc.tick(t0.Add(300 * time.Millisecond))
	login(5, "198.51.100.9", t0.Add(400*time.Millisecond)) // excluded: changes nothing
	if d := svc.Durable(); d != 5 {
		t.Fatalf("Durable = %d after an event that changed nothing, want 5", d)
	}
	if fmt.Sprint(told) != "[2 4 5]" {
		t.Fatalf("OnDurable told %v, want [2 4 5]", told)
	}
}

// TestAppendFailureKeepsJournal: a state file that cannot be appended to
// (here: replaced by a directory) delays nothing else, and once it can be
// written again every change made meanwhile reaches it.
func TestAppendFailureKeepsJournal(t *testing.T) {
	dir := t.TempDir()
	svc := crashService(t, dir, nil)
	svc.cfg.Flush = time.Second
	state := svc.cfg.StatePath
	svc.login(grant("192.0.2.1"), "", t0)
	svc.tick(t0.Add(100 * time.Millisecond))
	if err := os.Rename(state, state+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	svc.login(grant("192.0.2.2"), "", t0.Add(200*time.Millisecond))
	svc.tick(t0.Add(300 * time.Millisecond))
	if n := svc.stats.StateErrors.Load(); n != 1 {
		t.Fatalf("%d state errors, want 1", n)
	}
	svc.tick(t0.Add(2 * time.Second))
	if m, err := ReadMap(svc.cfg.MapPath); err != nil || len(m) != 2 {
		t.Fatalf("map = %v, %v; want both grants published while the state file fails", m, err)
	}
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(state+".away", state); err != nil {
		t.Fatal(err)
	}
	svc.login(grant("192.0.2.3"), "", t0.Add(3*time.Second))
	svc.tick(t0.Add(40 * time.Second)) // past any back-off
	if got, want := crashRead(t, svc, t0.Add(40*time.Second)), fmt.Sprint(toUTC(svc.table.Grants())); got != want {
		t.Fatalf("after the state file came back a crash restores\n%s\nwant\n%s", got, want)
	}
}

// BenchmarkJournalGroup is one group sync: the 200 logins of 100 ms at
// 2,000 logins a second appended to the state file and fdatasync'ed.
func BenchmarkJournalGroup(b *testing.B) {
	path := filepath.Join(b.TempDir(), "pbs.state")
	tab := grants.NewTable(grants.TableConfig{Grace: time.Hour})
	if err := saveTable(path, tab, nil); err != nil {
		b.Fatal(err)
	}
	now := t0
	for i := range b.N {
		b.StopTimer()
		if i%1000 == 0 { // keep the file from growing without end
			tab.Saved()
			if err := saveTable(path, tab, nil); err != nil {
				b.Fatal(err)
			}
		}
		for j := range 200 {
			now = now.Add(time.Millisecond)
			tab.Login(grants.Grant{Addr: netip.AddrFrom4([4]byte{10, 1, byte(j), byte(i)}), User: "user123456@example.org", Daemon: "dovecot", Host: "mx1"}, "", now)
		}
		b.StartTimer()
		if _, err := appendState(path, tab); err != nil {
			b.Fatal(err)
		}
		tab.Saved()
	}
}

// TestRunDurableAtClose: Run applies every queued event (and nothing
// else) and, once events is closed, has made them all durable.
func TestRunDurableAtClose(t *testing.T) {
	var told []uint64
	svc := crashService(t, t.TempDir(), func(seq uint64) { told = append(told, seq) })
	events := make(chan grants.Event, maxBatch+10)
	for i := range maxBatch + 5 {
		events <- grants.Event{Kind: grants.EventLogin, Grant: grant(fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)), At: t0, Seq: uint64(i + 1)}
	}
	close(events)
	if err := svc.Run(events, nil, newFakeClock(t0)); err != nil {
		t.Fatal(err)
	}
	if d := svc.Durable(); d != maxBatch+5 || len(told) == 0 || told[len(told)-1] != maxBatch+5 {
		t.Fatalf("Durable = %d, OnDurable told %v; want every event durable", d, told)
	}
	gs, err := LoadState(svc.cfg.StatePath)
	if err != nil || len(gs) != maxBatch+5 {
		t.Fatalf("state holds %d grants (%v), want %d", len(gs), err, maxBatch+5)
	}
}

// TestStateFailureDoesNotDelayMap: a state file that cannot be written has
// its own retry schedule; new grants still reach Postfix after one -flush.
func TestStateFailureDoesNotDelayMap(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.StatePath = filepath.Join(dir, "missing-dir", "pbs.state")
	svc := NewService(cfg, grants.NewTable(grants.TableConfig{Grace: time.Hour}))
	if err := svc.Start(t0); err != nil {
		t.Fatalf("an unwritable state file stopped the start: %v", err)
	}
	for i := 1; i <= 8; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		a := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		svc.login(grants.Grant{Addr: a, Daemon: "dovecot"}, "", now)
		if next := svc.tick(now); next.IsZero() {
			t.Fatal("no retry of the state file scheduled")
		}
		keys, err := ReadMap(filepath.Join(dir, "pbs.cdb"))
		if err != nil || len(keys) != i {
			t.Fatalf("after login %d the map has %d keys (%v): the state failure delayed the map", i, len(keys), err)
		}
	}
	if svc.stats.StateErrors.Load() == 0 {
		t.Fatal("state errors not counted")
	}
}
