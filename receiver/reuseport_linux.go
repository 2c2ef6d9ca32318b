package receiver

import (
	"syscall"
	"unsafe"
)

// Linux socket options (socket(7)) the syscall package does not name.
const (
	soReusePort                  = 0xf
	soAttachReuseportCBPF        = 51
	soDetachReuseportBPF         = 68
	bpfRetK               uint16 = 0x06 // BPF_RET | BPF_K
)

// reusePort lets a later socket of the same user, asking SO_REUSEPORT
// itself, bind this socket's address beside it. Set after bind(2), so
// that the bind itself stays exclusive: a second relaygate started
// normally still gets "address already in use".
func reusePort(fd uintptr) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
}

// steerToNewest attaches to the socket's SO_REUSEPORT group a classic BPF
// program that returns index 1: the socket that joined second, this
// takeover's own, gets every new datagram and connection while the one
// before it drains. With one socket left, index 1 does not exist and the
// kernel falls back to its hash, which has only that socket to choose.
func steerToNewest(fd uintptr) error {
	prog := []syscall.SockFilter{{Code: bpfRetK, K: 1}}
	fprog := syscall.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	_, _, errno := syscall.Syscall6(syscall.SYS_SETSOCKOPT, fd, syscall.SOL_SOCKET, soAttachReuseportCBPF,
		uintptr(unsafe.Pointer(&fprog)), unsafe.Sizeof(fprog), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// unsteer removes the group's program: the kernel's hash chooses again.
func unsteer(fd uintptr) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soDetachReuseportBPF, 0)
}
