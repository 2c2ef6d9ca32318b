package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/internal/testutil"
)

// TestRestartLosesNoDatagram (issue 11, point 9): a sender streams
// logins over UDP, each from its own address, while a second relaygate
// replaces the first with -takeover. Every login sent must be granted in
// the final map: none may meet a closed port, be discarded with the old
// process's socket buffer, or be lost between the two processes' tables.
// A plain stop-and-start closes the port for a while and loses logins.
func TestRestartLosesNoDatagram(t *testing.T) {
	mapPath, args, first, c := startTakeoverTarget(t)
	var replaced atomic.Bool
	var count atomic.Int64
	sent := make(chan int)
	go func() {
		// Until the takeover is over and a while after; bounded either
		// way. The pause keeps the stream below what the socket buffer
		// absorbs, so that only the restart could lose a datagram.
		n, after := 0, 0
		for ; n < 60000 && after < 500; n++ {
			if replaced.Load() {
				after++
			}
			fmt.Fprint(c, loginLine(restartAddr(n)))
			count.Store(int64(n + 1))
			time.Sleep(100 * time.Microsecond)
		}
		sent <- n
	}()
	testutil.Eventually(t, 10*time.Second, "a stream under way", func() bool { return count.Load() >= 1000 })
	second := startProc(t, append(args, "-udp", first.udp, "-takeover")...)
	replaced.Store(true)
	n := <-sent
	select {
	case <-first.exited:
	case <-time.After(testutil.EventuallyFloor):
		t.Fatal("the first relaygate did not exit after the takeover")
	}
	if code := first.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the first relaygate exited %d", code)
	}
	if code := second.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("the second relaygate exited %d", code)
	}
	keys, missing := missingLogins(t, mapPath, n)
	t.Logf("%d logins sent during the takeover, %d in the map", n, len(keys))
	if len(missing) > 0 {
		t.Fatalf("%d of %d logins lost in the takeover, first %v", len(missing), n, missing[:min(5, len(missing))])
	}
}

func restartAddr(i int) string { return fmt.Sprintf("10.%d.%d.%d", 100+i>>16, i>>8&255, i&255) }

// startTakeoverTarget starts the relaygate a -takeover replaces, on a
// fresh map, and dials its UDP port for a sender; it returns the map, the
// arguments a successor must share, the process and the connection
// (closed when the test ends).
func startTakeoverTarget(t *testing.T) (mapPath string, args []string, first *proc, c net.Conn) {
	t.Helper()
	mapPath = filepath.Join(t.TempDir(), "pbs.cdb")
	args = []string{"-map", mapPath, "-flush", "50ms", "-tcp", ""}
	first = startProc(t, args...)
	c, err := net.Dial("udp", first.udp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return mapPath, args, first, c
}

// missingLogins reads the map and returns its keys and, in order, the
// logins restartAddr(0) to restartAddr(n-1) it lacks.
func missingLogins(t *testing.T, mapPath string, n int) (keys, missing []string) {
	t.Helper()
	keys, err := cdbwriter.ReadMap(mapPath)
	if err != nil {
		t.Fatal(err)
	}
	have := make(map[string]bool, len(keys))
	for _, k := range keys {
		have[k] = true
	}
	for i := range n {
		if !have[restartAddr(i)] {
			missing = append(missing, restartAddr(i))
		}
	}
	return keys, missing
}

// TestNormalStartOnTakenPortFails: the listeners admit a -takeover's
// SO_REUSEPORT, but a second relaygate started normally, on another map,
// with the first one's UDP or TCP port, must still refuse to start with
// "address already in use" (and say what -takeover is for) rather than
// silently share the port and take half its datagrams.
func TestNormalStartOnTakenPortFails(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	first := startProc(t, "-map", filepath.Join(dir, "a.cdb"))
	for _, args := range [][]string{
		{"-map", filepath.Join(dir, "b.cdb"), "-udp", first.udp},
		{"-map", filepath.Join(dir, "c.cdb"), "-tcp", first.tcp},
	} {
		code, stderr, started := runOnce(t, exe, nil, args...)
		if started || code == 0 {
			t.Fatalf("a second relaygate with %v started (exit %d):\n%s", args, code, stderr)
		}
		if !strings.Contains(stderr, "address already in use") || !strings.Contains(stderr, "-takeover") {
			t.Errorf("%v: the refusal does not say the address is in use and what -takeover is for:\n%s", args, stderr)
		}
	}
	requireAlive(t, first)
	// -takeover on a map nobody holds, on a port nobody holds, is a
	// normal start.
	lone := startProc(t, "-map", filepath.Join(dir, "d.cdb"), "-takeover")
	if code := lone.stop(t, syscall.SIGTERM, 5*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
