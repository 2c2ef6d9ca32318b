package main

// Mounts for the fault tests: a tmpfs to fill, a bind mount to turn
// read-only. They need root and CAP_SYS_ADMIN; without them the tests skip,
// or fail under CI.

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

func mountOrSkip(t *testing.T, source, target, fstype string, flags uintptr, data string) {
	t.Helper()
	err := syscall.Mount(source, target, fstype, flags, data)
	if err == nil {
		return
	}
	if errors.Is(err, syscall.EPERM) && !testutil.InCI() {
		t.Skipf("cannot mount (no CAP_SYS_ADMIN here?): %v", err)
	}
	t.Fatalf("mount %s on %s: %v", source, target, err)
}

// mountTmpfs mounts a tmpfs of size on dir until the test ends.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	mountOrSkip(t, "tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755")
	t.Cleanup(func() { unmount(t, dir) })
}

// bindMount bind-mounts dir onto itself, so it can be remounted read-only
// without touching anything else.
func bindMount(t *testing.T, dir string) {
	t.Helper()
	mountOrSkip(t, dir, dir, "", syscall.MS_BIND, "")
	t.Cleanup(func() { unmount(t, dir) })
}

// remount makes a mount made by mountTmpfs or bindMount read-only or
// read-write again.
func remount(t *testing.T, dir string, bind, readOnly bool) {
	t.Helper()
	flags := uintptr(syscall.MS_REMOUNT)
	if bind {
		flags |= syscall.MS_BIND
	}
	if readOnly {
		flags |= syscall.MS_RDONLY
	}
	if err := syscall.Mount("", dir, "", flags, ""); err != nil {
		t.Fatalf("remount %s (read-only %v): %v", dir, readOnly, err)
	}
}

func unmount(t *testing.T, dir string) {
	t.Helper()
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err = syscall.Unmount(dir, 0); err == nil || !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("unmount %s: %v; detaching it", dir, err)
		syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	if mounted(t, dir) {
		t.Errorf("%s is still mounted after the test", dir)
	}
}

// mounted reports whether dir is a mount point in /proc/self/mountinfo.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && unescapeMountinfo(f[4]) == dir {
			return true
		}
	}
	return false
}

func unescapeMountinfo(s string) string {
	for _, r := range []struct{ from, to string }{{`\040`, " "}, {`\011`, "\t"}, {`\012`, "\n"}, {`\134`, `\`}} {
		s = strings.ReplaceAll(s, r.from, r.to)
	}
	return s
}

// realDir creates dir and returns it with symlinks resolved, as mountinfo
// shows it.
func realDir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
