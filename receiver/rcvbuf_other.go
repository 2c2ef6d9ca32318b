//go:build !linux

package receiver

import "syscall"

func setReadBuffer(fd, bytes int) (forced bool, granted int, err error) {
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, bytes); err != nil {
		return false, 0, err
	}
	got, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	return false, got, err
}
