package cdbwriter

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Lock is an exclusive hold on a map and its state file for one relaygate:
// two on the same files would each publish their own table over the
// other's. It is a flock on "<file>.lock" beside each file, which the
// kernel releases when the process dies however it dies, so a kill -9
// leaves nothing to clean up. The lock files themselves stay: removing one
// would let a third process lock a new file while the second still holds
// the old one.
//
// On Linux, beside each flock it binds an abstract unix socket named
// after the file's directory (device and inode) and name: no file system
// operation can remove it, so a lock file deleted or replaced while
// relaygate runs no longer lets a second one in, and the kernel frees it
// at death like the flock. Abstract names are per network namespace: two
// containers sharing the map's directory are still kept apart by the
// flock alone.
type Lock struct {
	files   []*os.File
	sockets []int // the abstract sockets (Linux)
}

// LockedError says another process holds the lock.
type LockedError struct {
	Path string // the lock file
	For  string // the map or state file it guards
	PID  int    // the holder, as it wrote itself into the lock file; 0 if unknown
	// Relaygate says PID is a running relaygate. The file names the last
	// relaygate that locked it; whoever holds it now may be another
	// process, which only an operator can judge.
	Relaygate bool
}

func (e *LockedError) Error() string {
	holder := "another process"
	switch {
	case e.PID > 0 && e.Relaygate:
		holder = "relaygate process " + strconv.Itoa(e.PID)
	case e.PID > 0:
		holder = "another process (the file names process " + strconv.Itoa(e.PID) + ", which is not a running relaygate; fuser " + e.Path + " shows who)"
	}
	return fmt.Sprintf("%s is in use: %s holds %s — fix: stop that relaygate first, or give this one its own -map and -state",
		e.For, holder, e.Path)
}

// AcquireLock locks every non-empty path in paths (the map, the state
// file) for this process, before anything reads or writes them, and
// writes the process ID into each lock file for the next one's error
// message. It never waits: a held lock is a *LockedError at once.
//
// Two paths naming one file by any spelling (./, .., a symlinked
// directory, a symlink or hard link to the file) are an error: with -state
// the map's own file, the state's text would be written over the cdb
// Postfix reads.
func AcquireLock(paths ...string) (*Lock, error) {
	for i, a := range paths {
		for _, b := range paths[i+1:] {
			if a != "" && b != "" && sameFile(a, b) {
				return nil, fmt.Errorf("-state %s names the same file as -map %s — fix: give -state a file of its own (the default is the map's name with .state)", b, a)
			}
		}
	}
	l := &Lock{}
	for _, p := range paths {
		if p == "" {
			continue
		}
		if err := l.add(p); err != nil {
			l.Release()
			return nil, err
		}
	}
	return l, nil
}

func (l *Lock) add(path string) error {
	name := path + ".lock"
	// Held through a read-only descriptor: a file open for writing would
	// stop the file system from being remounted read-only while relaygate
	// runs, and flock does not need one.
	// Mode 0600: flock needs only a descriptor open for reading, so a lock
	// file others can read is one any local user could hold to keep
	// relaygate from starting. A file an older version made 0644 is fixed
	// here; one another user owns keeps its mode.
	f, err := os.OpenFile(name, os.O_RDONLY|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("lock %s: %w — fix: let the user relaygate runs as create and read it (in the directory of %s)", name, err, path)
	}
	_ = f.Chmod(0o600)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		pid := readPID(f)
		f.Close()
		return &LockedError{Path: name, For: path, PID: pid, Relaygate: pid > 0 && runsRelaygate(pid)}
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("lock %s: %w", name, err)
	}
	// Only the holder writes, so the holder's PID is what a reader finds
	// (or an earlier holder's, in the instant before this write). A lock
	// file another user (root) left is still locked, only not written.
	if w, err := os.OpenFile(name, os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0); err == nil {
		w.WriteString(strconv.Itoa(os.Getpid()) + "\n")
		w.Close()
	}
	l.files = append(l.files, f)
	return l.addName(path)
}

// sameFile reports whether a and b name one file: the same existing file,
// or, when they do not exist yet, the same name in the same directory.
func sameFile(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	if fa, err := os.Stat(a); err == nil {
		fb, err := os.Stat(b)
		return err == nil && os.SameFile(fa, fb)
	}
	if filepath.Base(a) != filepath.Base(b) {
		return false
	}
	da, errA := os.Stat(filepath.Dir(a))
	db, errB := os.Stat(filepath.Dir(b))
	return errA == nil && errB == nil && os.SameFile(da, db)
}

// runsRelaygate reports whether process pid is a relaygate, by the name
// the kernel keeps for it.
func runsRelaygate(pid int) bool {
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return false
	}
	name := string(bytes.TrimSpace(comm))
	return strings.HasPrefix(name, "relaygate")
}

func readPID(f *os.File) int {
	var b [32]byte
	n, _ := f.ReadAt(b[:], 0)
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// Release gives the locks up; the process's exit does the same.
func (l *Lock) Release() {
	if l == nil {
		return
	}
	for _, f := range l.files {
		f.Close()
	}
	l.closeNames()
	l.files = nil
}
