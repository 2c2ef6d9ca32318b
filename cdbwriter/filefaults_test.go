package cdbwriter

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relaygate/relaygate/internal/grants"
)

// TestCarryOverFirstRecordWins: a cdb may hold a key twice; Postfix's
// lookup returns the first record, so an address whose first record is
// REJECT (or any non-grant) was never granted, whatever a later record
// says, and must not be carried over. One whose first record is OK was.
func TestCarryOverFirstRecordWins(t *testing.T) {
	dir := t.TempDir()
	writeRawMap(t, filepath.Join(dir, "pbs.cdb"), [][2]string{
		{"192.0.2.8", "REJECT"},
		{"192.0.2.8", "OK"},
		{"192.0.2.9\x00", "DUNNO\x00"}, // the same key with the trailing NUL
		{"192.0.2.9", "OK"},
		{"2001:db8::8", "550 no"},
		{"2001:db8::8", "1700000000"},
		{"192.0.2.7", "OK"}, // first OK: granted by Postfix, kept
		{"192.0.2.7", "REJECT"},
	})
	svc := carryService(t, dir, grants.TableConfig{}, nil)
	if err := svc.Start(t0); err != nil {
		t.Fatal(err)
	}
	if got, want := mapKeys(t, dir), []string{"192.0.2.7"}; !slices.Equal(got, want) {
		t.Fatalf("map = %v, want %v: a later duplicate record granted an address Postfix refused", got, want)
	}
}

// TestLockRefusesStateThatIsTheMap: -state naming the map's own file (the
// same string, another spelling, a symlink or a hard link) would write the
// state's text over the cdb Postfix reads. It is refused before anything
// is read or written, naming both flags.
func TestLockRefusesStateThatIsTheMap(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "pbs.cdb")
	writeRawMap(t, m, [][2]string{{"192.0.2.1", "OK"}})
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("pbs.cdb", filepath.Join(dir, "sym.state")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(m, filepath.Join(dir, "hard.state")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(".", filepath.Join(dir, "here")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(m)
	for _, state := range []string{
		m,
		filepath.Join(dir, ".", "pbs.cdb"),
		dir + "/sub/../pbs.cdb",
		dir + "//pbs.cdb",
		filepath.Join(dir, "here", "pbs.cdb"),
		filepath.Join(dir, "sym.state"),
		filepath.Join(dir, "hard.state"),
	} {
		l, err := AcquireLock(m, state)
		if err == nil {
			l.Release()
			t.Errorf("AcquireLock(%s, %s) succeeded; want a refusal", m, state)
			continue
		}
		var le *LockedError
		if errors.As(err, &le) || !strings.Contains(err.Error(), "-state") || !strings.Contains(err.Error(), state) {
			t.Errorf("AcquireLock(%s, %s) = %v; want an error saying -state is the map", m, state, err)
		}
	}
	// Nothing to spell twice when the map does not exist yet either.
	nm := filepath.Join(dir, "new.cdb")
	if l, err := AcquireLock(nm, filepath.Join(dir, "here", "new.cdb")); err == nil || !strings.Contains(err.Error(), "-state") {
		l.Release()
		t.Errorf("a not yet existing map named twice: %v; want an error saying -state is the map", err)
	}
	if after, _ := os.ReadFile(m); !slices.Equal(before, after) {
		t.Error("the map changed")
	}
	// Different files in the same directory are fine.
	l, err := AcquireLock(m, filepath.Join(dir, "pbs.state"))
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
}

// TestLockSurvivesDeletedLockFile: a lock file deleted or replaced while
// relaygate runs (an operator clearing "stale" locks, a cleanup job) let a
// second relaygate lock a new file and run beside the first, each
// publishing its own table over the other's. The lock must still refuse.
func TestLockSurvivesDeletedLockFile(t *testing.T) {
	for _, how := range []string{"deleted", "replaced"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			m, s := filepath.Join(dir, "pbs.cdb"), filepath.Join(dir, "pbs.state")
			first, err := AcquireLock(m, s)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Release()
			for _, p := range []string{m + ".lock", s + ".lock"} {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				if how == "replaced" {
					if err := os.WriteFile(p, []byte("1\n"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			second, err := AcquireLock(m, s)
			var le *LockedError
			if !errors.As(err, &le) || le.PID != os.Getpid() {
				second.Release()
				t.Fatalf("second AcquireLock after the lock files were %s = %v, want a LockedError naming PID %d", how, err, os.Getpid())
			}
			first.Release()
			again, err := AcquireLock(m, s)
			if err != nil {
				t.Fatalf("after Release: %v", err)
			}
			again.Release()
		})
	}
}
