package cdbwriter

import (
	"bytes"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/colinmarc/cdb"

	"github.com/relaygate/relaygate/internal/grants"
)

// writeRawMap writes a cdb with exactly these records, as another tool (or
// an older relaygate) might have left it.
func writeRawMap(t *testing.T, path string, records [][2]string) {
	t.Helper()
	w, err := cdb.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		if err := w.Put([]byte(r[0]), []byte(r[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func carryService(t *testing.T, dir string, tc grants.TableConfig, log *bytes.Buffer) *Service {
	t.Helper()
	if tc.Grace == 0 {
		tc.Grace = time.Hour
	}
	cfg := testConfig(t, dir)
	if log != nil {
		cfg = testConfig(t, dir, log)
	}
	return NewService(cfg, grants.NewTable(tc))
}

// TestCarryOverTakesOnlyGrants: a map from another tool, with no state
// file beside it. Only keys that are one grantable address in Postfix's
// lookup form with an OK value are carried over; exclusions and
// -max-entries still apply; each refusal is counted.
func TestCarryOverTakesOnlyGrants(t *testing.T) {
	dir := t.TempDir()
	writeRawMap(t, filepath.Join(dir, "pbs.cdb"), [][2]string{
		{"192.0.2.1", "OK"},
		{"2001:db8::1", "ok"},
		{"192.0.2.2", "1732183200"}, // all-numerical: access(5) reads it as OK
		{"192.0.2.3\x00", "OK\x00"}, // written with the trailing NUL
		{"192.0.2", "OK"},           // a network: relaygate grants hosts only
		{"mail.example.org", "OK"},  // a host name
		{"192.0.2.4", "REJECT"},     // not a grant
		{"::ffff:192.0.2.5", "OK"},  // Postfix never looks this form up
		{"2001:DB8::2", "OK"},       // nor this one
		{"fe80::1%eth0", "OK"},      // nor a zone
		{"224.0.0.1", "OK"},         // multicast: never a client
		{"0.0.0.0", "OK"},           // unspecified
		{"10.1.2.3", "OK"},          // excluded below
		{"192.0.2.6", "OK"},         // over -max-entries (5)
		{"192.0.2.7", "OK"},         // over -max-entries
		{strings.Repeat("9", 5000), "OK"},
	})
	var log bytes.Buffer
	svc := carryService(t, dir, grants.TableConfig{MaxEntries: 5, Exclude: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, &log)
	if err := svc.Start(t0); err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.6", "2001:db8::1"}
	if got := mapKeys(t, dir); !slices.Equal(got, want) {
		t.Fatalf("map = %v, want %v", got, want)
	}
	if got := svc.stats.CarriedOver.Load(); got != 5 {
		t.Errorf("CarriedOver = %d, want 5", got)
	}
	if got := svc.stats.CarryOverSkipped.Load(); got != 11 {
		t.Errorf("CarryOverSkipped = %d, want 11", got)
	}
	g, _ := svc.table.Lookup(netip.MustParseAddr("192.0.2.1"))
	if !g.Expires.Equal(t0.Add(time.Hour)) || g.Daemon != carriedDaemon {
		t.Errorf("carried grant = %+v, want expiry one grace period after the start", g)
	}
	if !strings.Contains(log.String(), `"carried_over":5`) {
		t.Errorf("the start did not log how many it carried over:\n%s", log.String())
	}
	// The state file now has them, with that expiry: a second restart
	// neither loses them nor extends them.
	again := carryService(t, dir, grants.TableConfig{}, nil)
	if err := again.Start(t0.Add(30 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if again.stats.CarriedOver.Load() != 0 || again.table.Len() != 5 {
		t.Fatalf("second start carried over %d, has %d; want 0 and the 5 restored", again.stats.CarriedOver.Load(), again.table.Len())
	}
	again.tick(t0.Add(time.Hour))
	if got := mapKeys(t, dir); len(got) != 0 {
		t.Fatalf("carried grants outlived their one grace period: %v", got)
	}
}

// TestCarryOverRespectsTheState: what the state file accounts for is
// never carried over. An address it says expired or removed stays out; a
// live one keeps the state's expiry; only the rest is carried.
func TestCarryOverRespectsTheState(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "pbs.state")
	var b []byte
	b = append(b, stateHeader+"\n"...)
	b = appendStateLine(b, netip.MustParseAddr("192.0.2.1"), t0.Add(-time.Minute), "", "", "", nil)       // expired
	b = appendStateLine(b, netip.MustParseAddr("192.0.2.2"), t0.Add(10*time.Minute), "bob", "d", "", nil) // removed below
	b = appendStateLine(b, netip.MustParseAddr("192.0.2.2"), tombstone, "", "", "", nil)
	b = appendStateLine(b, netip.MustParseAddr("192.0.2.3"), t0.Add(10*time.Minute), "carol", "d", "", nil)
	if err := os.WriteFile(state, b, 0o600); err != nil {
		t.Fatal(err)
	}
	writeRawMap(t, filepath.Join(dir, "pbs.cdb"), [][2]string{{"192.0.2.1", "OK"}, {"192.0.2.2", "OK"}, {"192.0.2.3", "OK"}, {"192.0.2.4", "OK"}})
	svc := carryService(t, dir, grants.TableConfig{}, nil)
	if err := svc.Start(t0); err != nil {
		t.Fatal(err)
	}
	if got := mapKeys(t, dir); !slices.Equal(got, []string{"192.0.2.3", "192.0.2.4"}) {
		t.Fatalf("map = %v, want the live grant and the unaccounted address", got)
	}
	if g, _ := svc.table.Lookup(netip.MustParseAddr("192.0.2.3")); !g.Expires.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("the state's grant got expiry %v, want its own", g.Expires)
	}
}

// TestDamagedMapIsReplaced: a map that is not a cdb is of no use to
// Postfix either; relaygate says so, carries over what it could read,
// and publishes the state's grants over it.
func TestDamagedMapIsReplaced(t *testing.T) {
	for name, content := range map[string][]byte{
		"junk":      bytes.Repeat([]byte{0xff}, 5000),
		"empty":     nil,
		"truncated": nil, // filled below
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			mapPath := filepath.Join(dir, "pbs.cdb")
			if name == "truncated" {
				writeRawMap(t, mapPath, [][2]string{{"192.0.2.1", "OK"}, {"192.0.2.2", "OK"}})
				data, _ := os.ReadFile(mapPath)
				content = data[:len(data)-100]
			}
			os.WriteFile(mapPath, content, 0o644)
			var log bytes.Buffer
			svc := carryService(t, dir, grants.TableConfig{}, &log)
			if err := svc.Start(t0); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadMap(mapPath); err != nil {
				t.Fatalf("the map was not replaced by a good one: %v", err)
			}
			if !strings.Contains(log.String(), "existing map damaged") {
				t.Errorf("no word of the damaged map in the log:\n%s", log.String())
			}
		})
	}
}

// TestUnreadableFilesRefuseToStart: a state file or map that exists but
// cannot be opened (permission denied; root can open anything, so the
// open is made to fail) stops the start before anything is written, with
// an error naming the file and the fix.
func TestUnreadableFilesRefuseToStart(t *testing.T) {
	for _, which := range []string{"pbs.state", "pbs.cdb"} {
		t.Run(which, func(t *testing.T) {
			dir := t.TempDir()
			goodMap(t, dir, 10)
			os.WriteFile(filepath.Join(dir, tempPrefix+"pbs.cdb-1"), nil, 0o600) // an earlier crash's
			before, _ := os.ReadFile(filepath.Join(dir, "pbs.cdb"))
			svc := carryService(t, dir, grants.TableConfig{}, nil)
			denied := filepath.Join(dir, which)
			svc.open = func(name string, flag int, perm os.FileMode) (*os.File, error) {
				if name == denied {
					return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EACCES}
				}
				return os.OpenFile(name, flag, perm)
			}
			err := svc.Start(t0.Add(time.Minute))
			var fe *FileError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), denied) || !strings.Contains(err.Error(), "fix:") {
				t.Fatalf("Start = %v, want a FileError naming %s and the fix", err, denied)
			}
			after, _ := os.ReadFile(filepath.Join(dir, "pbs.cdb"))
			if !bytes.Equal(before, after) {
				t.Fatalf("the map changed although Start failed")
			}
			if _, err := os.Stat(filepath.Join(dir, tempPrefix+"pbs.cdb-1")); err != nil {
				t.Errorf("a failed start touched the directory: %v", err)
			}
		})
	}
}

// TestStateReadBudget: a state file larger than any -max-entries can make
// is read up to the budget only, and the rest reported as damage.
func TestStateReadBudget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pbs.state")
	var b []byte
	b = append(b, stateHeader+"\n"...)
	for i := range 1000 {
		b = appendStateLine(b, netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)}), t0, "", "", "", nil)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	gs, _, err := loadState(os.OpenFile, path, stateLimits{maxBytes: 10 << 10})
	var d *StateDamage
	if !errors.As(err, &d) || d.StoppedAt == 0 || len(gs) == 0 || len(gs) >= 1000 {
		t.Fatalf("loadState over budget = %d grants, %v; want some, and the stop reported", len(gs), err)
	}
}
