package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/internal/testutil/sendtest"
)

// TestSecondInstanceRefused: a second relaygate on the same map and state
// must not start (issue 11, point 5): it would publish its own table over
// the first one's. It fails at once, naming the first one's PID, and the
// first one's grant stays in the map.
func TestSecondInstanceRefused(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mapPath := filepath.Join(dir, "pbs.cdb")
	first := startProc(t, "-map", mapPath, "-flush", "50ms")
	sendtest.UDP(t, first.udp, loginLine("192.0.2.10"))
	testutil.Eventually(t, 5*time.Second, "the first instance's grant in the map", func() bool { return sendtest.InMap(t, mapPath, "192.0.2.10") })
	for _, args := range [][]string{
		{"-map", mapPath},
		{"-map", filepath.Join(dir, "other.cdb"), "-state", filepath.Join(dir, "pbs.state")},
	} {
		code, stderr, started := runOnce(t, exe, nil, args...)
		if started || code == 0 {
			t.Fatalf("a second relaygate with %v started (exit %d):\n%s", args, code, stderr)
		}
		if want := fmt.Sprintf("relaygate process %d", first.cmd.Process.Pid); !strings.Contains(stderr, want) || !strings.Contains(stderr, "in use") {
			t.Errorf("the refusal does not name the holder (%q):\n%s", want, stderr)
		}
	}
	if !sendtest.InMap(t, mapPath, "192.0.2.10") {
		t.Fatal("the refused second instance dropped the first one's grant")
	}
	requireAlive(t, first)
	if code := first.stop(t, syscall.SIGTERM, 5*time.Second); code != 0 {
		t.Fatalf("first instance exit %d", code)
	}
	// Once the first has stopped, a new one starts.
	again := startProc(t, "-map", mapPath)
	again.stop(t, syscall.SIGTERM, 5*time.Second)
}
