package receiver

import (
	"net"
	"syscall"
	"testing"
)

// An accepted connection is probed, so one whose sender vanished without a
// FIN gives back its slot (and its sender's per-host share) in about 75 s.
func TestStreamKeepAlive(t *testing.T) {
	h := start(t, Config{TCP: "127.0.0.1:0"})
	c, err := net.Dial("tcp", h.r.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitCount(t, "ConnectionsOpen", &h.stats.connectionsOpen, 1)
	h.r.mu.Lock()
	var server net.Conn
	for conn := range h.r.conns {
		server = conn
	}
	h.r.mu.Unlock()
	raw, err := server.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	raw.Control(func(fd uintptr) {
		for name, opt := range map[string][2]int{
			"SO_KEEPALIVE":  {syscall.SOL_SOCKET, syscall.SO_KEEPALIVE},
			"TCP_KEEPIDLE":  {syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE},
			"TCP_KEEPINTVL": {syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL},
			"TCP_KEEPCNT":   {syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT},
		} {
			v, err := syscall.GetsockoptInt(int(fd), opt[0], opt[1])
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			got[name] = v
		}
	})
	want := map[string]int{"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": 15, "TCP_KEEPINTVL": 15, "TCP_KEEPCNT": 4}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
}
