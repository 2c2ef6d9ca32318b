package cdbwriter

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// addName binds the abstract socket for path. A name already bound by a
// process of this user or root is the holder (its PID from SO_PEERCRED,
// even with the lock file gone); one bound by another user is a squatter
// and is ignored, the flock alone then guards, as before. The directory's
// owner counts as this user: it could replace the files anyway, and a
// relaygate under another user (root beside one run as the owner) must
// see it.
func (l *Lock) addName(path string) error {
	name, owner, err := lockName(path)
	if err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	sa := &syscall.SockaddrUnix{Name: name}
	err = syscall.Bind(fd, sa)
	if err == nil {
		err = syscall.Listen(fd, 1)
	}
	if err == nil {
		l.sockets = append(l.sockets, fd)
		return nil
	}
	syscall.Close(fd)
	if !errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	pid, uid, ok := nameHolder(sa)
	if !ok || (uid != 0 && uid != uint32(os.Getuid()) && uid != owner) {
		return nil
	}
	return &LockedError{Path: path + ".lock", For: path, PID: pid, Relaygate: runsRelaygate(pid)}
}

// lockName is the abstract socket name for path: its directory's identity
// and its base name, so that every spelling of the path has the one name;
// and the directory's owner.
func lockName(path string) (string, uint32, error) {
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return "", 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", 0, errors.New("no inode for " + filepath.Dir(path))
	}
	sum := sha256.Sum256([]byte(filepath.Base(path)))
	return fmt.Sprintf("@relaygate-lock/%x/%x/%x", st.Dev, st.Ino, sum[:12]), st.Uid, nil
}

// nameHolder asks who listens on the abstract name: the kernel answers a
// connect with the listener's credentials.
func nameHolder(sa *syscall.SockaddrUnix) (pid int, uid uint32, ok bool) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, 0, false
	}
	defer syscall.Close(fd)
	if err := syscall.Connect(fd, sa); err != nil {
		// A full backlog (others asking at this instant) still means held.
		return 0, 0, errors.Is(err, syscall.EAGAIN)
	}
	cred, err := syscall.GetsockoptUcred(fd, syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	if err != nil {
		return 0, 0, false
	}
	return int(cred.Pid), cred.Uid, true
}

func (l *Lock) closeNames() {
	for _, fd := range l.sockets {
		syscall.Close(fd)
	}
	l.sockets = nil
}
