//go:build unix

package receiver

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// queued reports whether the socket has a datagram waiting: poll(2) with
// no timeout, which (unlike FIONREAD's next-datagram size) also sees an
// empty datagram.
func queued(conn syscall.Conn) bool {
	raw, err := conn.SyscallConn()
	if err != nil {
		return false
	}
	var ready bool
	raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, 0)
			if err == unix.EINTR {
				continue
			}
			ready = err == nil && n > 0 && fds[0].Revents&unix.POLLIN != 0
			return
		}
	})
	return ready
}
