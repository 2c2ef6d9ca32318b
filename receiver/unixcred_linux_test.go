package receiver

import (
	"syscall"
	"testing"
)

// TestSenderUIDRefusesEmptyCredentials: a datagram queued before
// SO_PASSCRED was set comes with pid 0 and the overflow uid; that names no
// sender (the attack round trusted -origin-from unix:nobody with it).
func TestSenderUIDRefusesEmptyCredentials(t *testing.T) {
	for _, c := range []struct {
		cred syscall.Ucred
		want int64
	}{
		{syscall.Ucred{Pid: 812, Uid: 0, Gid: 0}, 0},
		{syscall.Ucred{Pid: 4711, Uid: 1000, Gid: 1000}, 1000},
		{syscall.Ucred{Pid: 0, Uid: 65534, Gid: 65534}, -1},
		{syscall.Ucred{Pid: 0, Uid: 0, Gid: 0}, -1},
	} {
		if got := senderUID(syscall.UnixCredentials(&c.cred)); got != c.want {
			t.Errorf("%+v: uid %d, want %d", c.cred, got, c.want)
		}
	}
	if got := senderUID(nil); got != -1 {
		t.Errorf("no control message: %d", got)
	}
}
