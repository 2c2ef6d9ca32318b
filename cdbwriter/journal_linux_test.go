package cdbwriter

import (
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// TestAppendCutsBackFailedWrite: an append the disk refuses halfway (here
// the file size limit, as a full disk would) is cut back off, so the file
// ends in whole lines a restart reads, and appending (not a rewrite of the
// whole file) resumes with the same changes once there is room. It runs in
// a child process: the size limit is process-wide.
func TestAppendCutsBackFailedWrite(t *testing.T) {
	if os.Getenv("RELAYGATE_FSIZE_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAppendCutsBackFailedWrite$", "-test.count=1")
		cmd.Env = append(os.Environ(), "RELAYGATE_FSIZE_CHILD="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	signal.Ignore(syscall.SIGXFSZ)
	svc := crashService(t, os.Getenv("RELAYGATE_FSIZE_CHILD"), nil)
	svc.login(grant("192.0.2.1"), "S1", t0)
	svc.tick(t0.Add(100 * time.Millisecond))
	before, err := os.ReadFile(svc.cfg.StatePath)
	if err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	small := syscall.Rlimit{Cur: uint64(len(before)) + 20, Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &small); err != nil {
		t.Fatal(err)
	}
	svc.login(grant("192.0.2.2"), "S2", t0.Add(time.Second))
	svc.tick(t0.Add(1100 * time.Millisecond))
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if n := svc.stats.StateErrors.Load(); n != 1 {
		t.Fatalf("%d state errors, want 1", n)
	}
	if after, _ := os.ReadFile(svc.cfg.StatePath); string(after) != string(before) {
		t.Fatalf("after the failed append the state file is\n%s\nwant it cut back to\n%s", after, before)
	}
	svc.tick(t0.Add(time.Minute))
	if got, want := crashRead(t, svc, t0.Add(time.Minute)), fmtGrants(svc); got != want {
		t.Fatalf("a crash restores\n%s\nwant\n%s", got, want)
	}
	if n := stateLines(t, svc.cfg.StatePath); n != 2 || svc.stateLines != 2 {
		t.Fatalf("state file has %d grant lines (%d counted), want 2: the retry appends", n, svc.stateLines)
	}
}
