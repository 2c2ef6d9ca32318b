package receiver

import "syscall"

func setReadBuffer(fd, bytes int) (forced bool, granted int, err error) {
	forced = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, bytes) == nil
	if !forced {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, bytes); err != nil {
			return false, 0, err
		}
	}
	got, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	if err != nil {
		return forced, 0, err
	}
	// Linux doubles the value set, for its bookkeeping, and reports the
	// doubled value (socket(7)); half of it is what compares with the ask.
	return forced, got / 2, nil
}
