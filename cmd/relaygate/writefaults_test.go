package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/internal/testutil/sendtest"
)

// writeFaultCase is the part TestDiskFull and TestMapDirReadOnly share: with
// relaygate running on dir and one grant published, fault() breaks writes;
// relaygate must keep running and granting in memory, keep the previous map
// intact, log the error (mentioning errText) and retry with back-off; after
// heal() it must publish every grant.
func writeFaultCase(t *testing.T, dir string, fault, heal func(), errText string) {
	postmap := lookPostmap(t)
	mapPath := filepath.Join(dir, "pbs.cdb")
	p := startProcAs(t, testExecutable(t), nil, "-map", mapPath, "-flush", "50ms", "-grace", "1h")
	first := "192.0.2.10"
	sendtest.UDP(t, p.udp, loginLine(first))
	testutil.Eventually(t, 5*time.Second, "first login in the map", func() bool { return sendtest.InMap(t, mapPath, first) })
	old, err := os.ReadFile(mapPath)
	if err != nil {
		t.Fatal(err)
	}

	fault()
	faulted := time.Now()
	var more []string
	for i := 1; i <= 40; i++ {
		more = append(more, fmt.Sprintf("198.51.100.%d", i))
	}
	for _, a := range more {
		sendtest.UDP(t, p.udp, loginLine(a))
	}
	// Granted in memory: one "granted" line each.
	testutil.Eventually(t, 5*time.Second, "every new login granted in memory", func() bool {
		g := grantedAddrs(p)
		for _, a := range more {
			if !g[a] {
				return false
			}
		}
		return true
	})
	// Logged as errors, each writer (map, state) retried with its own
	// growing back-off.
	mapErrors := func() []map[string]any {
		return eventsWhere(p, func(ev map[string]any) bool {
			msg, _ := ev["message"].(string)
			return ev["level"] == "error" && strings.HasPrefix(msg, "map write failed")
		})
	}
	testutil.Eventually(t, 15*time.Second, "three failed map writes logged", func() bool { return len(mapErrors()) >= 3 })
	errs := errorEvents(p)
	for _, ev := range errs {
		msg, _ := ev["error"].(string)
		if !strings.Contains(msg, errText) {
			t.Errorf("error line does not say %q: %s", errText, mustJSON(ev))
		}
	}
	var retries []float64
	for _, ev := range mapErrors() {
		if r, ok := ev["retry_in"].(float64); ok {
			retries = append(retries, r)
		}
	}
	if len(retries) < 3 || !(retries[0] < retries[1] && retries[1] < retries[2]) {
		t.Errorf("retry_in of the first map failures = %v ms, want growing back-off", retries)
	}
	t.Logf("first error: %s", mustJSON(errs[0]))
	t.Logf("retry_in of %d map failures within %v: %v ms", len(retries), time.Since(faulted).Round(time.Millisecond), retries)

	requireAlive(t, p)
	now, err := os.ReadFile(mapPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(now, old) {
		t.Fatalf("the map changed while writes failed (%d bytes, was %d)", len(now), len(old))
	}
	if keys, err := mapKeys(mapPath); err != nil || !slices.Equal(keys, []string{first}) {
		t.Fatalf("map while writes fail: %v, %v; want the previous map [%s]", keys, err, first)
	}
	checkMapWithPostmap(t, postmap, mapPath, []string{first})
	if n := tempLeftovers(t, dir); n > 0 {
		t.Errorf("%d temporary files left by failed writes: %v", n, dirEntries(t, dir))
	}

	heal()
	cleared := time.Now()
	all := append([]string{first}, more...)
	sort.Strings(all)
	testutil.Eventually(t, 40*time.Second, "every grant in the map once writes work again", func() bool {
		keys, err := mapKeys(mapPath)
		return err == nil && slices.Equal(keys, all)
	})
	t.Logf("published %d grants %v after the fault cleared (%d error lines in all)", len(all), time.Since(cleared).Round(time.Millisecond), len(errorEvents(p)))
	checkMapWithPostmap(t, postmap, mapPath, all)
	grants, err := cdbwriter.LoadState(strings.TrimSuffix(mapPath, ".cdb") + ".state")
	if err != nil {
		t.Fatal(err)
	}
	if len(grants) != len(all) {
		t.Errorf("state file holds %d grants, want %d", len(grants), len(all))
	}
	requireAlive(t, p)
	failures := len(mapErrors())
	if code := p.stop(t, syscall.SIGTERM, 5*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	if got := dirEntries(t, dir); !slices.Equal(got, []string{"pbs.cdb", "pbs.cdb.lock", "pbs.state", "pbs.state.lock"}) {
		t.Errorf("map directory holds %v, want only the map, the state file and their locks", got)
	}
	// Every failed publish was counted.
	checkStopCounters(t, p, map[string]int64{"publish_errors": int64(failures)})
}

// TestDiskFull: map and state on a 64 KiB tmpfs that a filler file fills up.
func TestDiskFull(t *testing.T) {
	requireRoot(t)
	dir := realDir(t, filepath.Join(t.TempDir(), "tmpfs"))
	mountTmpfs(t, dir, "64k")
	filler := filepath.Join(dir, "filler")
	writeFaultCase(t, dir, func() {
		n := fillDisk(t, filler)
		var st syscall.Statfs_t
		syscall.Statfs(dir, &st)
		t.Logf("filler: %d bytes; %d bytes free", n, st.Bavail*uint64(st.Bsize))
	}, func() {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	}, "no space left on device")
}

// fillDisk writes path until the file system is full and returns its size.
func fillDisk(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	for _, chunk := range []int{4096, 512, 1} {
		buf := make([]byte, chunk)
		for {
			m, err := f.Write(buf)
			n += int64(m)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return n
}

// TestMapDirReadOnly: the map directory (a bind mount of itself) is
// remounted read-only while relaygate runs, then read-write again. As root,
// file permissions would not stop the writes.
func TestMapDirReadOnly(t *testing.T) {
	requireRoot(t)
	dir := realDir(t, filepath.Join(t.TempDir(), "map"))
	bindMount(t, dir)
	writeFaultCase(t, dir,
		func() { remount(t, dir, true, true) },
		func() { remount(t, dir, true, false) },
		"read-only file system")
}

// TestStateUnwritable: the state file's directory turns read-only while the
// map directory stays writable. Grants must still reach Postfix, the error
// must be logged, and the state must be saved once it can be.
func TestStateUnwritable(t *testing.T) {
	requireRoot(t)
	postmap := lookPostmap(t)
	base := t.TempDir()
	mapDir := realDir(t, filepath.Join(base, "map"))
	stateDir := realDir(t, filepath.Join(base, "state"))
	bindMount(t, stateDir)
	mapPath := filepath.Join(mapDir, "pbs.cdb")
	statePath := filepath.Join(stateDir, "pbs.state")

	t.Run("at startup", func(t *testing.T) {
		// Observed, not prescribed: today a state file that cannot be
		// written at startup stops relaygate with a one-line error.
		remount(t, stateDir, true, true)
		defer remount(t, stateDir, true, false)
		code, stderr, started := runOnce(t, testExecutable(t), nil, "-map", filepath.Join(mapDir, "startup.cdb"), "-state", statePath)
		switch {
		case started:
			t.Logf("relaygate starts with an unwritable state file")
		case code == 0:
			t.Errorf("relaygate exited 0 without starting:\n%s", stderr)
		case !strings.Contains(stderr, statePath):
			t.Errorf("startup failure does not name the state file %s:\n%s", statePath, stderr)
		default:
			t.Logf("relaygate refuses to start (exit %d): %s", code, strings.TrimSpace(stderr))
		}
		os.Remove(filepath.Join(mapDir, "startup.cdb"))
	})

	p := startProcAs(t, testExecutable(t), nil, "-map", mapPath, "-state", statePath, "-flush", "50ms", "-grace", "1h")
	first := "192.0.2.10"
	sendtest.UDP(t, p.udp, loginLine(first))
	testutil.Eventually(t, 5*time.Second, "first login in the map", func() bool { return sendtest.InMap(t, mapPath, first) })
	testutil.Eventually(t, 5*time.Second, "first login in the state file", func() bool {
		g, _ := cdbwriter.LoadState(statePath)
		return len(g) == 1
	})
	oldState, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}

	remount(t, stateDir, true, true)
	// One login at a time: each must reach the map while the state cannot
	// be saved. The latencies show how the state's back-off holds back the
	// map (see docs/HARDENING.md).
	all := []string{first}
	var latencies []time.Duration
	for i := 1; i <= 7; i++ {
		a := fmt.Sprintf("198.51.100.%d", i)
		all = append(all, a)
		sent := time.Now()
		sendtest.UDP(t, p.udp, loginLine(a))
		testutil.Eventually(t, 40*time.Second, a+" in the map while the state is unwritable", func() bool { return sendtest.InMap(t, mapPath, a) })
		latencies = append(latencies, time.Since(sent).Round(time.Millisecond))
	}
	t.Logf("login-to-map latency with an unwritable state file: %v", latencies)
	for i, l := range latencies {
		if l > 2*time.Second {
			t.Errorf("login %d reached the map %v after it was sent: the state file's back-off holds back map publishes", i+1, l)
		}
	}
	sort.Strings(all)
	keys, err := mapKeys(mapPath)
	if err != nil || !slices.Equal(keys, all) {
		t.Fatalf("map: %v, %v; want %v", keys, err, all)
	}
	checkMapWithPostmap(t, postmap, mapPath, all)
	errs := errorEvents(p)
	if len(errs) == 0 {
		t.Fatal("no error logged for the unwritable state file")
	}
	for _, ev := range errs {
		if msg, _ := ev["error"].(string); !strings.Contains(msg, statePath) || !strings.Contains(msg, "read-only file system") {
			t.Errorf("error line does not name the state file and the cause: %s", mustJSON(ev))
		}
	}
	t.Logf("%d error lines; first: %s", len(errs), mustJSON(errs[0]))
	if now, _ := os.ReadFile(statePath); !bytes.Equal(now, oldState) {
		t.Errorf("the state file changed on a read-only file system")
	}
	requireAlive(t, p)

	// Writable again: without any new login the state catches up.
	remount(t, stateDir, true, false)
	cleared := time.Now()
	testutil.Eventually(t, 60*time.Second, "every grant in the state file once it is writable", func() bool {
		g, err := cdbwriter.LoadState(statePath)
		return err == nil && len(g) == len(all)
	})
	t.Logf("state saved %v after it became writable", time.Since(cleared).Round(time.Millisecond))
	requireAlive(t, p)
	failures := len(errorEvents(p))
	if code := p.stop(t, syscall.SIGTERM, 5*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	// Every failed state save was counted; no map publish failed.
	checkStopCounters(t, p, map[string]int64{"state_save_errors": int64(failures)})
	if n, ok := stopCounter(stopped(t, p), "publish_errors"); ok && n != 0 {
		t.Errorf("publish_errors = %d, want 0: only the state file was unwritable", n)
	}
}
