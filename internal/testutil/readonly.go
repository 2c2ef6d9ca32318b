package testutil

import (
	"errors"
	"os"
	"syscall"
	"testing"
)

// ReadOnlyDir makes dir refuse new files until the test ends (or until
// the returned function is called): for a non-root user by its mode, for
// root (whom modes do not stop) by bind-mounting it onto itself read-only.
// Without the right to mount, the test is skipped, or fails under CI.
func ReadOnlyDir(t testing.TB, dir string) (writable func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		undo := func() { os.Chmod(dir, 0o755) }
		t.Cleanup(undo)
		return undo
	}
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		if errors.Is(err, syscall.EPERM) && !InCI() {
			t.Skipf("cannot bind-mount %s (no CAP_SYS_ADMIN?): %v", dir, err)
		}
		t.Fatalf("bind-mount %s: %v", dir, err)
	}
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		syscall.Unmount(dir, syscall.MNT_DETACH)
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
	mounted := true
	undo := func() {
		if mounted {
			mounted = false
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		}
	}
	t.Cleanup(undo)
	return undo
}
