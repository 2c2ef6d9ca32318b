package receiver

import (
	"net"
	"strings"
	"testing"
)

// TestUDPEveryFamily: batched reads work on an IPv4, an IPv6 and a
// dual-stack wildcard socket, and name each sender as a single read did.
func TestUDPEveryFamily(t *testing.T) {
	text := "pop3-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1"
	for _, c := range []struct{ listen, from, peer string }{
		{"127.0.0.1:0", "127.0.0.1", "127.0.0.1:"},
		{"[::1]:0", "::1", "[::1]:"},
		{":0", "127.0.0.1", "[::ffff:127.0.0.1]:"},
		{":0", "::1", "[::1]:"},
	} {
		t.Run(c.listen+" from "+c.from, func(t *testing.T) {
			h := start(t, Config{UDP: c.listen})
			_, port, _ := net.SplitHostPort(h.r.UDPAddr().String())
			conn, err := net.Dial("udp", net.JoinHostPort(c.from, port))
			if err != nil {
				t.Skip(err) // no IPv6 here
			}
			defer conn.Close()
			// A burst, so that reads return several datagrams at once.
			for range 50 {
				conn.Write([]byte(login3164))
			}
			for range 50 {
				if m := h.expect(t, "dovecot", text); !strings.HasPrefix(m.Peer, c.peer) {
					t.Fatalf("peer %q, want %s…", m.Peer, c.peer)
				}
			}
			if n := h.stats.udp.Load(); n != 50 {
				t.Fatalf("counted %d datagrams, want 50", n)
			}
		})
	}
}

// TestUDPReadBufferLogged: the receive buffer the kernel granted is logged,
// and it is what was asked for where relaygate may force it (root,
// CAP_NET_ADMIN).
func TestUDPReadBufferLogged(t *testing.T) {
	h := start(t, Config{UDP: "127.0.0.1:0", UDPReadBuf: 1 << 20})
	if !strings.Contains(h.logs.String(), `"asked":1048576`) || !strings.Contains(h.logs.String(), `"granted":`) {
		t.Fatalf("receive buffer not logged:\n%s", h.logs)
	}
	rb, err := SetReadBuffer(h.r.udp, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if rb.Granted <= 0 || (rb.Forced && rb.Granted != 1<<20) {
		t.Fatalf("SetReadBuffer = %+v", rb)
	}
}
