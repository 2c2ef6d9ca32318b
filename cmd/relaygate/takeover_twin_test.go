package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

// TestTwinTakeoverLosesNothing: two -takeover started at the same instant
// on one running relaygate. Exactly one replaces it; the other must give
// up at once. Before, the loser steered every datagram to its own socket
// and queued them while it waited -takeover-timeout for a lock the winner
// now held, then exited with them: every login of that time was lost.
func TestTwinTakeoverLosesNothing(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	mapPath, args, first, c := startTakeoverTarget(t)
	var count atomic.Int64
	var stopSending atomic.Bool
	sent := make(chan int)
	go func() {
		n := 0
		// Until the test stops it; the cap only bounds a test that
		// failed to.
		for ; n < 200000 && !stopSending.Load(); n++ {
			fmt.Fprint(c, loginLine(restartAddr(n)))
			count.Store(int64(n + 1))
			time.Sleep(200 * time.Microsecond)
		}
		sent <- n
	}()
	testutil.Eventually(t, 10*time.Second, "a stream under way", func() bool { return count.Load() >= 500 })

	type twin struct {
		cmd  *exec.Cmd
		out  bytes.Buffer
		done chan struct{}
	}
	var twins [2]*twin
	var mu sync.Mutex
	for i := range twins {
		tw := &twin{done: make(chan struct{})}
		tw.cmd = exec.Command(exe, append([]string{"serve", "-log-format", "json", "-mynetworks", "none",
			"-udp", first.udp, "-takeover", "-takeover-timeout", "90s"}, args...)...)
		tw.cmd.Env = append(os.Environ(), "RELAYGATE_TEST_MAIN=1", "GORACE=atexit_sleep_ms=0")
		tw.cmd.Stderr = &lineLog{onLine: func(line []byte) {
			mu.Lock()
			defer mu.Unlock()
			tw.out.Write(line)
			tw.out.WriteByte('\n')
		}}
		twins[i] = tw
	}
	for _, tw := range twins {
		if err := tw.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { tw.cmd.Wait(); close(tw.done) }()
		t.Cleanup(func() { tw.cmd.Process.Kill(); <-tw.done })
	}
	var loser, winner *twin
	select {
	case <-twins[0].done:
		loser, winner = twins[0], twins[1]
	case <-twins[1].done:
		loser, winner = twins[1], twins[0]
	case <-time.After(30 * time.Second): // a third of -takeover-timeout: race builds on a loaded CI machine start slowly
		stopSending.Store(true)
		<-sent
		t.Fatal("neither -takeover gave up within 30 s: the loser waits for a lock the winner holds, with the traffic steered to it")
	}
	lostAt := count.Load()
	select {
	case <-first.exited:
	case <-time.After(testutil.EventuallyFloor):
		t.Fatal("the first relaygate did not exit after the takeover")
	}
	mu.Lock()
	t.Logf("loser exited %d:\n%s", loser.cmd.ProcessState.ExitCode(), loser.out.String())
	mu.Unlock()
	if loser.cmd.ProcessState.ExitCode() == 0 {
		t.Error("the losing -takeover exited 0")
	}
	testutil.Eventually(t, 10*time.Second, "more logins after the loser gave up", func() bool { return count.Load() >= lostAt+2000 })
	stopSending.Store(true)
	n := <-sent
	winner.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-winner.done:
	case <-time.After(testutil.EventuallyFloor):
		t.Fatal("the winning relaygate did not exit")
	}
	_, missing := missingLogins(t, mapPath, n)
	t.Logf("%d logins sent, %d missing (the loser gave up after login %d)", n, len(missing), lostAt)
	// What the loser's socket was given by the kernel's hash in the few
	// milliseconds between its bind and its exit is its own to lose; a
	// login sent after it gave up is not.
	for _, m := range missing {
		if addrIndex(m) >= int(lostAt) {
			t.Fatalf("login %s, sent after the losing -takeover exited, is not in the map", m)
		}
	}
	if len(missing) > 200 {
		t.Errorf("%d logins lost in a twin takeover", len(missing))
	}
}

func addrIndex(a string) int {
	var x, y, z, w int
	fmt.Sscanf(a, "%d.%d.%d.%d", &x, &y, &z, &w)
	return (y-100)<<16 | z<<8 | w
}
