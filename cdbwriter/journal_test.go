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
		svc.Login(grant(fmt.Sprint("192.0.2.", i)), "", t0)
	}
	svc.Login(grant("192.0.2.9"), "S9", t0)
	svc.Tick(t0.Add(time.Second))
	if n := stateLines(t, state); n != 4 {
		t.Fatalf("state file has %d grant lines after 4 logins, want 4", n)
	}
	svc.Login(grant("192.0.2.1"), "", t0.Add(2*time.Second)) // extended: a second line
	svc.SetExclude([]netip.Prefix{netip.MustParsePrefix("192.0.2.2/32")})
	svc.Tick(t0.Add(20 * time.Second))
	if n := stateLines(t, state); n != 6 {
		t.Fatalf("state file has %d grant lines, want 6: 4, the extension and a tombstone", n)
	}
	grants, err := LoadState(state)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(toUTC(grants)) != fmt.Sprint(toUTC(svc.Table().Grants())) {
		t.Fatalf("state file reads as\n%v\nwant\n%v", grants, svc.Table().Grants())
	}
	if err := svc.Shutdown(t0.Add(21 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := stateLines(t, state); n != 3 {
		t.Fatalf("state file has %d grant lines after Shutdown, want the 3 grants, rewritten whole", n)
	}
	again := newTestService(t, dir, time.Hour) // excludes nothing
	if got := fmt.Sprint(again.Table().Grants()); got != fmt.Sprint(toUTC(svc.Table().Grants())) {
		t.Fatalf("restored %v", got)
	}
	if n := stateLines(t, state); n != 3 {
		t.Fatalf("a restart rewrote the state file with %d lines, want the 3 grants", n)
	}
}

// TestStateTornAppend: a crash in the middle of an append leaves a last line
// without its newline; it is not damage, and the lines before it stand.
func TestStateTornAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pbs.state")
	g := grant("192.0.2.1")
	g.Expires = t0
	if err := SaveState(path, []Grant{g}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"addr":"192.0.2.2","expires":"2026-11-21T10:3`)
	f.Close()
	grants, err := LoadState(path)
	if err != nil || len(grants) != 1 || Key(grants[0].Addr) != "192.0.2.1" {
		t.Fatalf("LoadState = %v, %v; want the one whole line and no damage", grants, err)
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
	svc := NewService(Config{
		MapPath:    filepath.Join(dir, "pbs.cdb"),
		StatePath:  filepath.Join(dir, "pbs.state"),
		Flush:      time.Second,
		StateEvery: time.Second,
		Logger:     zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	}, NewTable(TableConfig{Grace: 10 * time.Minute, MaxSession: 30 * time.Minute, MaxEntries: 200}))
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
			svc.Login(Grant{Addr: a, User: "u", Daemon: "dovecot", Host: "mx1"}, session, now)
		case r < 95:
			svc.Logout("dovecot", "", fmt.Sprint(rng.IntN(100)), now)
		case r < 96:
			svc.SetExclude([]netip.Prefix{netip.PrefixFrom(a, 28).Masked()})
		}
		svc.Tick(now)
		if _, changes := svc.Table().Versions(); changes != svc.savedChanges {
			continue
		}
		if svc.stateLines < lastLines {
			rewrites++
		}
		lastLines = svc.stateLines
		if limit := 2*svc.Table().Len() + svc.stateSlack; svc.stateLines > limit {
			t.Fatalf("step %d: state file has %d lines for %d grants", step, svc.stateLines, svc.Table().Len())
		}
		grants, err := LoadState(svc.cfg.StatePath)
		if err != nil {
			t.Fatal(err)
		}
		back := NewTable(TableConfig{Grace: 10 * time.Minute, MaxSession: 30 * time.Minute, MaxEntries: 200})
		back.Restore(grants, now)
		if got, want := fmt.Sprint(back.Grants()), fmt.Sprint(toUTC(svc.Table().Grants())); got != want {
			t.Fatalf("step %d: state reads back as\n%s\nwant\n%s", step, got, want)
		}
		checked++
	}
	t.Logf("checked %d times, %d rewrites", checked, rewrites)
	if checked < 100 || rewrites == 0 {
		t.Fatalf("checked %d times, %d rewrites: the test no longer exercises what it should", checked, rewrites)
	}
}
