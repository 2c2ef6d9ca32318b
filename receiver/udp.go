package receiver

import (
	"context"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// udpBatch is how many datagrams one read may return. On Linux a read is
// one recvmmsg(2) call for every datagram waiting, up to this many, where
// ReadFrom takes one system call each: at 100,000 datagrams a second the
// system calls were relaygate's largest cost, and a receiver that falls
// behind catches up the faster the more it takes per call. The buffers
// cost udpBatch × (MaxMessage+3) bytes, 2 MiB at the defaults.
const udpBatch = 32

// batchReader is ipv4.PacketConn or ipv6.PacketConn (their Message types
// are one type); elsewhere than on Linux it reads one datagram per call.
type batchReader interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
}

// readUDP serves the UDP socket.
func (r *Receiver) readUDP(ctx context.Context, conn *net.UDPConn, out chan<- Message) {
	var pc batchReader = ipv6.NewPacketConn(conn)
	if ua, ok := conn.LocalAddr().(*net.UDPAddr); ok && ua.IP.To4() != nil {
		pc = ipv4.NewPacketConn(conn)
	}
	msgs := make([]ipv4.Message, udpBatch)
	for i := range msgs {
		// Room for the limit, the two trailing bytes (CR LF) not counted
		// in it, and one more, so an over-long datagram is seen as such
		// rather than parsed truncated.
		msgs[i].Buffers = [][]byte{make([]byte, r.cfg.MaxMessage+3)}
	}
	for {
		n, err := pc.ReadBatch(msgs, 0)
		if err != nil {
			if r.readFailed(ctx, conn, err, "udp") {
				return
			}
			continue
		}
		r.draining(conn, true)
		for i := range msgs[:n] {
			m := &msgs[i]
			var ap netip.AddrPort
			if ua, ok := m.Addr.(*net.UDPAddr); ok {
				ap = ua.AddrPort()
			}
			if !r.allowed(ap) {
				r.stats.NotAllowed.Add(1)
				r.warnf("not_allowed", ap.Addr().Unmap().String(), "dropped datagram from a sender outside -allow")
				continue
			}
			if !r.datagram(ctx, m.Buffers[0][:m.N], source{transport: "udp", addr: ap}, out) {
				return
			}
		}
	}
}
