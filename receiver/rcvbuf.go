package receiver

import (
	"fmt"
	"syscall"
)

// ReadBuffer is what SetReadBuffer got from the kernel.
type ReadBuffer struct {
	Asked   int  // bytes asked for
	Granted int  // bytes the kernel reports it gave (getsockopt), or 0 if unknown
	Forced  bool // SO_RCVBUFFORCE was allowed (root or CAP_NET_ADMIN)
}

// Short reports whether the kernel gave less than was asked.
func (b ReadBuffer) Short() bool { return b.Granted > 0 && b.Granted < b.Asked }

// SetReadBuffer sizes a datagram socket's receive buffer: the only place
// datagrams can wait while relaygate is busy, so the one that decides what
// a burst loses. SO_RCVBUF is silently capped at net.core.rmem_max (208 KiB
// on many systems); SO_RCVBUFFORCE, allowed to root and CAP_NET_ADMIN, is
// not, so it is tried first. The result says what the kernel really gave.
func SetReadBuffer(conn syscall.Conn, bytes int) (ReadBuffer, error) {
	rb := ReadBuffer{Asked: bytes}
	raw, err := conn.SyscallConn()
	if err != nil {
		return rb, fmt.Errorf("receive buffer: %w", err)
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		rb.Forced, rb.Granted, serr = setReadBuffer(int(fd), bytes)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return rb, fmt.Errorf("receive buffer: %w", err)
	}
	return rb, nil
}
