package receiver

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// listenUnix binds the unix datagram socket at path with exactly mode and
// group. bind(2) creates the socket file with the process umask, and the
// umask is process-wide (changing it in a running multi-threaded daemon
// races every other file it creates), so the socket is bound in a new
// directory beside path that only relaygate's user can enter, given its
// group and mode there, and renamed over path: no one can connect to it
// before it has its final permissions.
// maxSunPath is the size of sockaddr_un's sun_path on Linux, NUL included.
const maxSunPath = 108

func listenUnix(path string, mode os.FileMode, group string, passCred bool) (*net.UnixConn, error) {
	gid, err := lookupGID(group)
	if err != nil {
		return nil, err
	}
	if err := checkStaleSocket(path); err != nil {
		return nil, err
	}
	// A short name: the temporary path must fit sun_path (108 bytes) too.
	dir, err := os.MkdirTemp(filepath.Dir(path), ".rg")
	if err != nil {
		return nil, fmt.Errorf("unix socket %s: private directory to create it in: %w", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	if len(tmp) >= maxSunPath {
		return nil, fmt.Errorf("unix socket %s: path too long: relaygate binds it as %s (%d bytes) before renaming it into place, and a unix socket path must be under %d bytes; use a shorter -unix path",
			path, tmp, len(tmp), maxSunPath)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: tmp, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("listen unixgram %s (created as %s before the rename): %w", path, tmp, err)
	}
	if passCred {
		// Before anyone can reach the socket: a datagram queued before
		// SO_PASSCRED carries no credentials, which the kernel reports as
		// the overflow uid.
		if err := passCredentials(conn); err != nil {
			conn.Close()
			return nil, fmt.Errorf("unix socket %s: senders' credentials (for -origin-from unix): %w", path, err)
		}
	}
	// Lchown and Chmod reach the socket itself: nothing else can have
	// replaced it inside the private directory.
	if err := os.Lchown(tmp, -1, gid); err != nil {
		conn.Close()
		if errors.Is(err, fs.ErrPermission) {
			err = fmt.Errorf("%w (relaygate's user must be a member of the group, or have CAP_CHOWN)", err)
		}
		return nil, fmt.Errorf("unix socket %s: set group %d: %w", path, gid, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		conn.Close()
		return nil, fmt.Errorf("unix socket %s: set mode %#o: %w", path, uint32(mode), err)
	}
	// rename(2) replaces a stale socket atomically: senders never find
	// the path missing or pointing at a socket with other permissions.
	if err := os.Rename(tmp, path); err != nil {
		conn.Close()
		return nil, fmt.Errorf("unix socket %s: move into place: %w", path, err)
	}
	return conn, nil
}

// lookupGID resolves -unix-group, a group name or a numeric gid; empty is
// relaygate's own effective group, set explicitly so that a set-group-ID
// directory can't choose another one.
func lookupGID(group string) (int, error) {
	if group == "" {
		return os.Getegid(), nil
	}
	g, err := user.LookupGroup(group)
	if err == nil {
		return strconv.Atoi(g.Gid)
	}
	if n, nerr := strconv.ParseUint(group, 10, 31); nerr == nil {
		return int(n), nil
	}
	var unknown user.UnknownGroupError
	if errors.As(err, &unknown) {
		return 0, fmt.Errorf("-unix-group %q: no such group (name a group from /etc/group or give a numeric gid)", group)
	}
	return 0, fmt.Errorf("-unix-group %q: %w", group, err)
}

// checkStaleSocket refuses a path that exists and is not a socket (a
// regular file someone pointed -unix at by mistake); a socket left by an
// earlier run is replaced by the rename.
func checkStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unix socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("unix socket %s: exists and is not a socket", path)
	}
	return nil
}

// inode is path's own inode number (not following a symlink), 0 if it
// cannot be read.
func inode(path string) uint64 {
	fi, err := os.Lstat(path)
	if err != nil {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
