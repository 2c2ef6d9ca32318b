//go:build !linux

package receiver

import (
	"errors"
	"net"
)

func passCredentials(*net.UnixConn) error {
	return errors.New("the sender's credentials on the unix socket are read on Linux only")
}

func credOOBSize() int { return 0 }

func senderUID([]byte) int64 { return -1 }
