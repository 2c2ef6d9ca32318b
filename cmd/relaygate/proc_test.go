package main

// The harness of the process-level tests: relaygate runs as a real process
// (the test binary re-executed, see TestMain) and is judged by its exit
// code and its JSON log.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

// proc is relaygate running as a real process (the test binary re-executed).
type proc struct {
	cmd      *exec.Cmd
	udp, tcp string
	logs     *lineLog
	exited   chan struct{}
}

// lineLog collects a process's stderr. cmd.Wait returns only after every
// byte written to it was copied here, so the last lines (the "stopped"
// line) are never lost, as they can be with StderrPipe.
type lineLog struct {
	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte
	onLine  func(line []byte)
}

func (l *lineLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(b)
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		if l.onLine != nil {
			l.onLine(l.partial[:i])
		}
		l.partial = l.partial[i+1:]
	}
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return startProcAs(t, exe, nil, args...)
}

// startProcAs starts relaygate from exe (a copy of the test binary) with the
// given credentials (nil: the test's own).
func startProcAs(t *testing.T, exe string, cred *syscall.Credential, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(exe, append([]string{"serve", "-log-format", "json", "-udp", "127.0.0.1:0", "-tcp", "127.0.0.1:0", "-mynetworks", "none"}, args...)...)
	// atexit_sleep_ms: the race detector's own one-second pause at exit is
	// not relaygate's shutdown time.
	cmd.Env = append(os.Environ(), "RELAYGATE_TEST_MAIN=1", "GORACE=atexit_sleep_ms=0")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	ready := make(chan struct{})
	p.logs = &lineLog{onLine: func(line []byte) {
		var ev struct{ Message, UDP, TCP string }
		if json.Unmarshal(line, &ev) == nil && ev.Message == "relaygate listening" {
			p.udp, p.tcp = ev.UDP, ev.TCP
			close(ready)
		}
	}}
	cmd.Stderr = p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("relaygate log:\n%s", p.log())
		}
	})
	select {
	case <-ready:
	case <-p.exited:
		t.Fatalf("relaygate exited at startup:\n%s", p.log())
	case <-time.After(testutil.EventuallyFloor):
		t.Fatalf("relaygate did not start:\n%s", p.log())
	}
	return p
}

func (p *proc) log() string { return p.logs.String() }

// stop sends sig and returns the exit code.
func (p *proc) stop(t *testing.T, sig syscall.Signal, within time.Duration) int {
	t.Helper()
	start := time.Now()
	p.cmd.Process.Signal(sig)
	// within is what an exit normally takes; only a hang fails (see
	// testutil.EventuallyFloor), a slow exit is logged.
	limit := max(within, testutil.EventuallyFloor)
	select {
	case <-p.exited:
	case <-time.After(limit):
		t.Fatalf("relaygate did not exit within %s of %v", limit, sig)
	}
	took := time.Since(start)
	t.Logf("exited %s after %v", took.Round(time.Millisecond), sig)
	if took > within {
		t.Logf("slow: the exit took more than the %s it normally needs", within)
	}
	return p.cmd.ProcessState.ExitCode()
}

// runOnce runs relaygate serve that is expected to fail at startup. It
// reports the exit code and stderr, or started=true (and kills it) if it
// came up after all.
func runOnce(t *testing.T, exe string, cred *syscall.Credential, args ...string) (code int, stderr string, started bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, append([]string{"serve", "-log-format", "json", "-udp", "127.0.0.1:0", "-tcp", "", "-mynetworks", "none"}, args...)...)
	cmd.Env = append(os.Environ(), "RELAYGATE_TEST_MAIN=1")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var mu sync.Mutex
	var out bytes.Buffer
	cmd.Stderr = &lineLog{onLine: func(line []byte) {
		mu.Lock()
		defer mu.Unlock()
		out.Write(line)
		out.WriteByte('\n')
		if bytes.Contains(line, []byte(`"message":"relaygate listening"`)) {
			started = true
			cmd.Process.Kill()
		}
	}}
	err := cmd.Run()
	mu.Lock()
	defer mu.Unlock()
	if ctx.Err() != nil {
		t.Fatalf("relaygate neither started nor exited within 20 s:\n%s", out.String())
	}
	if err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), started
}

func procAlive(p *proc) bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func requireAlive(t *testing.T, p *proc) {
	t.Helper()
	if !procAlive(p) {
		t.Fatalf("relaygate died (%v)", p.cmd.ProcessState)
	}
}

// logEvents returns relaygate's JSON log lines, parsed.
func logEvents(p *proc) []map[string]any {
	var evs []map[string]any
	for _, line := range strings.Split(p.log(), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil {
			evs = append(evs, ev)
		}
	}
	return evs
}

func eventsWhere(p *proc, keep func(map[string]any) bool) []map[string]any {
	var out []map[string]any
	for _, ev := range logEvents(p) {
		if keep(ev) {
			out = append(out, ev)
		}
	}
	return out
}

func errorEvents(p *proc) []map[string]any {
	return eventsWhere(p, func(ev map[string]any) bool { return ev["level"] == "error" })
}

// grantedAddrs is the set of addresses relaygate logged as granted.
func grantedAddrs(p *proc) map[string]bool {
	got := map[string]bool{}
	for _, ev := range eventsWhere(p, func(ev map[string]any) bool { return ev["message"] == "granted" }) {
		if a, ok := ev["addr"].(string); ok {
			got[a] = true
		}
	}
	return got
}

// stopped returns relaygate's one "stopped" log line: the counters at
// shutdown, under the names metric.Sample.LogKey gives them.
func stopped(t *testing.T, p *proc) map[string]any {
	t.Helper()
	lines := eventsWhere(p, func(ev map[string]any) bool { return ev["message"] == "stopped" })
	if len(lines) != 1 {
		t.Fatalf("want one \"stopped\" log line, got %d", len(lines))
	}
	return lines[0]
}

// stopCounter is the counter key of the "stopped" line.
func stopCounter(line map[string]any, key string) (int64, bool) {
	v, ok := line[key].(float64)
	return int64(v), ok
}

// checkStopCounters asserts that the "stopped" log line has each counter at
// least at its minimum.
func checkStopCounters(t *testing.T, p *proc, min map[string]int64) {
	t.Helper()
	line := stopped(t, p)
	for name, want := range min {
		got, ok := stopCounter(line, name)
		switch {
		case !ok:
			t.Errorf("the \"stopped\" line has no counter %s: %s", name, mustJSON(line))
		case got < want:
			t.Errorf("counter %s = %d, want at least %d", name, got, want)
		default:
			t.Logf("counter %s = %d (want ≥ %d)", name, got, want)
		}
	}
}

func testExecutable(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// requireRoot skips a test that needs root, or fails it under CI=true.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if testutil.InCI() {
		t.Fatal("this test needs root (CI=true: failing instead of skipping)")
	}
	t.Skip("needs root: run the tests as root to include it")
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
