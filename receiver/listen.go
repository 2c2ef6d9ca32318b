package receiver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Binding the IP listeners: exclusively for a normal start, into the
// running relaygate's SO_REUSEPORT group for a takeover, and steering new
// traffic to the newcomer (reuseport_linux.go holds the socket options).

// listenUDP binds the UDP socket: exclusively, then open to a takeover's
// SO_REUSEPORT; or, for a takeover, into the group already there.
func listenUDP(addr *net.UDPAddr, takeover bool) (*net.UDPConn, error) {
	if takeover {
		lc := net.ListenConfig{Control: JoinGroup}
		pc, err := lc.ListenPacket(context.Background(), "udp", addr.String())
		if err != nil {
			return nil, err
		}
		return pc.(*net.UDPConn), nil
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, err
	}
	if err := control(conn, reusePort); err != nil {
		conn.Close()
		return nil, fmt.Errorf("SO_REUSEPORT: %w", err)
	}
	return conn, nil
}

// JoinGroup is a net.ListenConfig Control that sets SO_REUSEPORT before
// bind(2): how a -takeover binds beside the running relaygate's socket.
// The daemon's listeners outside the receiver (RELP) bind with it too
// under Takeover, then go to AddListener.
func JoinGroup(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) { serr = reusePort(fd) }); err != nil {
		return err
	}
	return serr
}

// control runs f on conn's descriptor.
func control(conn syscall.Conn, f func(fd uintptr) error) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(fd) }); err != nil {
		return err
	}
	return ferr
}

// inUseHint says what an "address already in use" means here.
func inUseHint(err error, takeover bool) string {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return ""
	}
	if takeover {
		return " — the socket there does not admit a takeover: it is not a relaygate's, or a relaygate older than -takeover, or another user's; stop it and start without -takeover"
	}
	return " — another process (another relaygate?) listens there; to replace a running relaygate without a gap, start the new one with -takeover"
}

func listenTCP(transport, address string, takeover bool) (*net.TCPListener, error) {
	if _, err := net.ResolveTCPAddr("tcp", address); err != nil {
		return nil, fmt.Errorf("%s listen address %q: %w", transport, address, err)
	}
	// Keepalive probes an idle TCP or TLS connection after 15 s, then every
	// 15 s, and ends it after 4 unanswered probes: a sender that vanished
	// without a FIN (a crash, a cable, a NAT that forgot it) gives back its
	// MaxConns and MaxConnsPerHost slot within about 75 s, even without
	// IdleTimeout. A live sender's kernel answers the probes, so a quiet
	// connection that is still there is never closed by them.
	lc := net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: 15 * time.Second, Interval: 15 * time.Second, Count: 4,
	}}
	if takeover {
		lc.Control = JoinGroup
	}
	// Plain TCP: since Go 1.24 (go.mod's go line) a ListenConfig listens
	// with MPTCP where the kernel has it, and an MPTCP socket refuses the
	// steering program of a takeover (EOPNOTSUPP).
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp", address)
	if err != nil {
		return nil, fmt.Errorf("listen %s %s: %w%s", transport, address, err, inUseHint(err, takeover))
	}
	tl := ln.(*net.TCPListener)
	if !takeover {
		if err := control(tl, reusePort); err != nil {
			tl.Close()
			return nil, fmt.Errorf("listen %s %s: SO_REUSEPORT: %w", transport, address, err)
		}
	}
	return tl, nil
}

// Steer sends every new datagram and connection on the UDP, TCP and TLS
// addresses to this receiver's sockets rather than to the relaygate bound
// there before it (Takeover), which can then drain what it has queued and
// close without losing any. The kernel keeps the choice per address for
// as long as any socket is bound there.
func (r *Receiver) Steer() error {
	return r.eachGroup(steerToNewest)
}

// Unsteer gives the traffic back to the kernel's hash: a takeover that
// failed before its predecessor stopped leaves it serving everything.
func (r *Receiver) Unsteer() error {
	return r.eachGroup(unsteer)
}

func (r *Receiver) eachGroup(f func(fd uintptr) error) error {
	var errs []error
	add := func(name string, conn syscall.Conn) {
		if err := control(conn, f); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if r.udp != nil {
		add("udp", r.udp)
	}
	if r.tcp != nil {
		add("tcp", r.tcp)
	}
	if r.tlsLn != nil {
		add("tls", r.tlsLn)
	}
	for _, l := range r.others {
		add(l.name, l.conn)
	}
	return errors.Join(errs...)
}

// otherListener is a listening socket of the daemon's that the receiver
// does not serve (RELP), in its takeover group.
type otherListener struct {
	name string
	conn syscall.Conn
}

// AddListener makes another of the daemon's TCP listeners (RELP) take part
// in a takeover as the receiver's own do: bound normally (exclusively), it
// is opened to a successor's SO_REUSEPORT now; bound with JoinGroup under
// Takeover, it is already in its predecessor's group. Steer and Unsteer
// include it from then on. Call it before Steer, from the goroutine that
// calls Steer.
func (r *Receiver) AddListener(name string, conn syscall.Conn) error {
	if !r.cfg.Takeover {
		if err := control(conn, reusePort); err != nil {
			return fmt.Errorf("listen %s: SO_REUSEPORT: %w", name, err)
		}
	}
	r.others = append(r.others, otherListener{name, conn})
	return nil
}
