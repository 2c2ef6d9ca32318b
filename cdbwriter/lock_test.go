package cdbwriter

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/relaygate/relaygate/internal/testutil"
)

// TestLockRefusesASecondHolder: flock locks belong to an open file
// description, so a second AcquireLock in the same process conflicts just
// as a second relaygate does; the error names the holder's PID.
func TestLockRefusesASecondHolder(t *testing.T) {
	dir := t.TempDir()
	m, s := filepath.Join(dir, "pbs.cdb"), filepath.Join(dir, "pbs.state")
	first, err := AcquireLock(m, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, paths := range [][]string{{m, s}, {m}, {filepath.Join(dir, "other.cdb"), s}} {
		_, err := AcquireLock(paths...)
		var le *LockedError
		if !errors.As(err, &le) || le.PID != os.Getpid() || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
			t.Fatalf("second AcquireLock(%v) = %v, want a LockedError naming PID %d", paths, err, os.Getpid())
		}
	}
	// The refused attempt for other.cdb gave its own lock back.
	other, err := AcquireLock(filepath.Join(dir, "other.cdb"))
	if err != nil {
		t.Fatalf("a refused AcquireLock kept a lock it had taken: %v", err)
	}
	other.Release()
	first.Release()
	again, err := AcquireLock(m, s)
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	again.Release()
}

// TestLockSeesAnotherProcess: the lock holds against a real second process,
// both ways round (flock(1) from util-linux stands in for it).
func TestLockSeesAnotherProcess(t *testing.T) {
	flock := testutil.RequireProgram(t, "flock", "apt-get install util-linux")
	dir := t.TempDir()
	m := filepath.Join(dir, "pbs.cdb")
	l, err := AcquireLock(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(flock, "-n", m+".lock", "true").Run(); err == nil {
		t.Fatal("another process took the lock this one holds")
	}
	l.Release()
	// Held by another process, which says when it has it.
	cmd := exec.Command(flock, "-n", m+".lock", "sh", "-c", "echo locked; exec sleep 30")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "locked\n" {
		t.Fatalf("flock(1) did not take the lock: %q, %v", line, err)
	}
	_, err = AcquireLock(m)
	var le *LockedError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), m+".lock") {
		t.Fatalf("AcquireLock while another process holds it = %v, want a LockedError", err)
	}
	// The file still names this process, which is no relaygate and does
	// not hold it: the message must not send the operator after it.
	if le.Relaygate || strings.Contains(err.Error(), "relaygate process") || !strings.Contains(err.Error(), "another process") {
		t.Errorf("lock held by flock(1), error %q", err)
	}
}

// TestLockFileNotReadableByOthers: flock needs only a descriptor open for
// reading, so a lock file any local user can read is one any local user
// can hold to keep relaygate from starting. Files an older version made
// 0644 are fixed.
func TestLockFileNotReadableByOthers(t *testing.T) {
	dir := t.TempDir()
	m, st := filepath.Join(dir, "pbs.cdb"), filepath.Join(dir, "pbs.state")
	if err := os.WriteFile(st+".lock", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := AcquireLock(m, st)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	for _, p := range []string{m + ".lock", st + ".lock"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
}
