package receiver

import (
	"net"
	"syscall"
)

// passCredentials asks the kernel to attach the sender's credentials
// (SCM_CREDENTIALS) to every datagram the socket receives: who wrote a
// datagram is then known whatever its text says.
func passCredentials(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1)
	}); err != nil {
		return err
	}
	return serr
}

// credOOBSize is room for one SCM_CREDENTIALS message.
func credOOBSize() int { return syscall.CmsgSpace(syscall.SizeofUcred) }

// senderUID reads the sender's uid from a datagram's control messages; -1
// when the kernel attached none, or attached the empty credentials it
// gives a datagram sent before SO_PASSCRED was set (pid 0, the overflow
// uid): those say nothing about the sender.
func senderUID(oob []byte) int64 {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return -1
	}
	for i := range msgs {
		if cred, err := syscall.ParseUnixCredentials(&msgs[i]); err == nil {
			if cred.Pid == 0 {
				return -1
			}
			return int64(cred.Uid)
		}
	}
	return -1
}
