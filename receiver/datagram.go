package receiver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/relaygate/relaygate/receiver/syslogmsg"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// The datagram readers: one goroutine for the UDP socket, one for the unix
// socket. A datagram is one message; over-long ones are counted and
// dropped, everything else goes to deliver.

// udpBatch is how many datagrams one read may return. On Linux a read is
// one recvmmsg(2) call for every datagram waiting, up to this many, where
// ReadFrom takes one system call each: at 100,000 datagrams a second the
// system calls were relaygate's largest cost, and a receiver that falls
// behind catches up the faster the more it takes per call. The buffers
// cost udpBatch × (maxMessage+3) bytes, 2 MiB at the defaults.
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
		msgs[i].Buffers = [][]byte{make([]byte, r.cfg.maxMessage+3)}
	}
	for {
		n, err := pc.ReadBatch(msgs, 0)
		if err != nil {
			if r.readFailed(ctx, conn, err, "udp") {
				return
			}
			continue
		}
		for i := range msgs[:n] {
			m := &msgs[i]
			var ap netip.AddrPort
			if ua, ok := m.Addr.(*net.UDPAddr); ok {
				ap = ua.AddrPort()
			}
			if !r.allowed(ap) {
				r.stats.notAllowed.Add(1)
				r.warnf("not_allowed", ap.Addr().Unmap().String(), "dropped datagram from a sender outside -allow")
				continue
			}
			if !r.datagram(ctx, m.Buffers[0][:m.N], source{transport: "udp", addr: ap}, out) {
				return
			}
		}
		// Quiet is timed from after the hand-off: a slow consumer does
		// not use up the drain's wait for the next datagram.
		r.draining(conn, true)
	}
}

// readUnix serves the unix datagram socket.
func (r *Receiver) readUnix(ctx context.Context, conn *net.UnixConn, out chan<- Message) {
	// Room for the limit and the two trailing bytes (CR LF) not counted in
	// it, and one more, so an over-long datagram is seen as such rather than
	// parsed truncated.
	buf := make([]byte, r.cfg.maxMessage+3)
	var oob []byte
	if len(r.cfg.OriginFromUnix) > 0 {
		oob = make([]byte, credOOBSize())
	}
	for {
		n, oobn, _, addr, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if r.readFailed(ctx, conn, err, "unix") {
				return
			}
			continue
		}
		src := source{transport: "unix", peer: r.cfg.Unix, uid: -1}
		if addr != nil && addr.String() != "" {
			src.peer = addr.String()
		}
		if oob != nil {
			src.uid = senderUID(oob[:oobn])
		}
		if !r.datagram(ctx, buf[:n], src, out) {
			return
		}
		r.draining(conn, true)
	}
}

// readFailed handles a read error of a datagram socket: it reports true
// when the socket is closed or drained, and otherwise logs and pauses
// briefly.
func (r *Receiver) readFailed(ctx context.Context, conn datagramConn, err error, transport string) bool {
	if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		return true
	}
	if errors.Is(err, os.ErrDeadlineExceeded) && r.draining(conn, false) {
		return r.drainOver(conn, transport)
	}
	r.log.Warn().Err(err).Str("transport", transport).Msg("read error")
	select {
	case <-ctx.Done():
		return true
	case <-time.After(10 * time.Millisecond):
	}
	return false
}

// datagram counts and delivers one datagram. It reports false once ctx is
// done.
func (r *Receiver) datagram(ctx context.Context, data []byte, src source, out chan<- Message) bool {
	if len(data) > r.cfg.maxMessage+2 || len(syslogmsg.TrimTrailingControl(data)) > r.cfg.maxMessage {
		r.stats.tooLong.Add(1)
		r.warnf("too_long", src.name(), fmt.Sprintf("dropped %s datagram over %d bytes, the message size limit", src.transport, r.cfg.maxMessage))
		return true
	}
	if src.transport == "udp" {
		r.stats.udp.Add(1)
	} else {
		r.stats.unix.Add(1)
	}
	return r.deliver(ctx, data, src, out)
}
