package outputs

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

// gone says whether pid has exited (a zombie not yet reaped counts).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

// firstPID is the first line of a run error's quoted output: the pid the
// test's shell printed.
func firstPID(t *testing.T, err error) int {
	t.Helper()
	s := err.Error()
	i := strings.LastIndex(s, ": ")
	f := strings.Fields(s[i+2:])
	if len(f) == 0 {
		t.Fatalf("no pid in %q", s)
	}
	pid, perr := strconv.Atoi(f[0])
	if perr != nil {
		t.Fatalf("no pid in %q", s)
	}
	return pid
}

// TestRunTimeoutKillsGrandchildren: a program that started another and
// waits for it (sudo smtpctl, a shell) is stopped by the deadline with
// everything it started, and run returns at once, not when the
// grandchild would have ended.
func TestRunTimeoutKillsGrandchildren(t *testing.T) {
	// Time enough for sh to start sleep and print its pid on a loaded
	// machine, and far below sleep's 30 s.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	err := run(ctx, nil, []string{"sh", "-c", "sleep 30 & echo $!; wait"})
	took := time.Since(start)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the deadline", err)
	}
	if took > 10*time.Second {
		t.Fatalf("run returned after %v: the grandchild held it", took)
	}
	pid := firstPID(t, err)
	testutil.Eventually(t, 5*time.Second, "the grandchild killed", func() bool { return gone(pid) })
}

// TestRunBackgroundChildHoldingOutput: a program that exits at once but
// leaves a process holding its output does not hold run: it returns
// within commandWaitDelay, failing, and that process is killed.
func TestRunBackgroundChildHoldingOutput(t *testing.T) {
	saved := commandWaitDelay
	commandWaitDelay = 200 * time.Millisecond
	defer func() { commandWaitDelay = saved }()
	start := time.Now()
	err := run(context.Background(), nil, []string{"sh", "-c", "sleep 30 & echo $!"})
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("run returned after %v", took)
	}
	if err == nil || !strings.Contains(err.Error(), "kept its output open") {
		t.Fatalf("err %v", err)
	}
	pid := firstPID(t, err)
	testutil.Eventually(t, 5*time.Second, "the background process killed", func() bool { return gone(pid) })
}

// TestRunOutputCapped: a program printing without end costs a bounded
// buffer, and a failure word printed last is still found.
func TestRunOutputCapped(t *testing.T) {
	err := run(context.Background(), nil, []string{"sh", "-c", "head -c 5000000 /dev/zero | tr '\\0' x; echo; echo command failed"}, "command failed")
	if err == nil || !strings.Contains(err.Error(), "command failed") {
		t.Fatalf("err %v", err)
	}
	if len(err.Error()) > 2000 {
		t.Errorf("error of %d bytes", len(err.Error()))
	}
	w := &capWriter{max: 10}
	for range 1000 {
		w.Write([]byte("0123456789abcdef"))
	}
	if len(w.head) != 10 || len(w.tail) != 10 || w.dropped != 16000-20 || !strings.HasSuffix(w.String(), "6789abcdef") {
		t.Errorf("head %q tail %q dropped %d", w.head, w.tail, w.dropped)
	}
}
