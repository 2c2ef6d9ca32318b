// Package receiver is relaygate's syslog destination: UDP, TCP (newline and
// RFC 6587 octet-counted framing), TLS (RFC 5425) and a unix datagram
// socket. It reads each message's envelope with receiver/syslogmsg (the
// message format, which knows no sockets) and hands it on; it knows nothing
// of mail daemons.
//
// The sockets are relaygate's own rather than go-syslog's Server, which can be
// crashed remotely, shrinks the UDP receive buffer to 128 KiB, silently drops
// a TCP connection on a 64 KiB line, cannot refuse a sender before accepting
// it, and panics in Kill (see docs/DESIGN.md).
//
// Every limit (sender networks, HOSTNAME list, connection count in all and
// per sender, idle time, message size, TLS client certificates) is counted
// in Stats and logged at most once per reason every 10 s; none of them is
// ever fatal.
//
// The files follow a message's way in: config.go and stats.go (what a
// caller sets and reads; udpdrops.go adds the kernel's count), listen.go,
// unixsocket.go and rcvbuf.go (binding), datagram.go (UDP and unix
// readers), stream.go with framing.go and tls.go (TCP and TLS
// connections), conns.go (connection limits), deliver.go (the checks every
// message passes, and the hand-off), ratelimit.go (the log), drain.go
// (shutdown).
package receiver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/relaygate/relaygate/internal/lograte"
	"github.com/relaygate/relaygate/internal/origin"

	"github.com/relaygate/relaygate/receiver/syslogmsg"
	"github.com/rs/zerolog"
)

// Message is one received syslog message.
type Message struct {
	syslogmsg.Envelope
	Received  time.Time // relaygate's clock at receipt; grants never use the header time
	Transport string    // "udp", "tcp", "tls", "unix", or "relp" (Admit)
	Peer      string    // sender "ip:port", or the socket path for unix
	// TLSPeer names the sender's verified client certificate: its subject
	// CN, or its first DNS name when the CN is empty. Set only on "tls"
	// with TLSClientCA, and on "relp" over TLS with one; empty otherwise.
	TLSPeer string
	// Origin is what the message says about its writer (see Config's
	// OriginFrom); the zero Claim says nothing.
	Origin origin.Claim
}

// Receiver owns the bound sockets.
type Receiver struct {
	cfg     Config
	log     zerolog.Logger
	stats   *Stats
	udp     *net.UDPConn
	tcp     *net.TCPListener
	tlsLn   *net.TCPListener
	tlsConf *tls.Config
	unix    *net.UnixConn
	hosts   map[string]struct{} // AllowHosts, lower case; nil = all
	others  []otherListener     // the daemon's other listeners in the takeover group (AddListener)

	warn *lograte.Limiter

	unixIno uint64 // the unix socket file's inode: Close removes only its own

	// drainEnd (Unix nanoseconds; 0 until Serve's context ends) is when
	// the datagram readers stop reading what is still queued.
	drainEnd atomic.Int64
	// drainQuiet is how long an empty socket must stay empty to end the
	// drain: the constant, shorter in a test that proves a late reader
	// still reads everything.
	drainQuiet time.Duration

	mu      sync.Mutex
	conns   map[net.Conn]netip.Addr // TCP and TLS, the raw connection → its sender's hostKey
	perHost map[netip.Addr]int      // open connections by hostKey
	closed  bool
}

// Listen binds every configured socket, so that a caller can report a bad
// address before doing anything else. It loads the TLS certificate, key and
// client CA first, and names the file in any error.
func Listen(cfg Config) (*Receiver, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Receiver{
		cfg:     cfg,
		log:     cfg.Logger.With().Str("component", "receiver").Logger(),
		stats:   cfg.Stats,
		hosts:   hostSet(cfg.AllowHosts),
		conns:   make(map[net.Conn]netip.Addr),
		perHost: make(map[netip.Addr]int),
		warn:    lograte.New(10 * time.Second),

		drainQuiet: drainQuiet,
	}
	if cfg.TLS != "" {
		conf, leaf, err := LoadTLSConfig(cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA)
		if err != nil {
			return nil, err
		}
		r.tlsConf = conf
		if now := cfg.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
			r.log.Warn().Str("file", cfg.TLSCert).Time("not_before", leaf.NotBefore).Time("not_after", leaf.NotAfter).
				Msg("TLS certificate is not valid now; clients that verify it will refuse to send")
		}
	}
	if cfg.UDP != "" {
		addr, err := net.ResolveUDPAddr("udp", cfg.UDP)
		if err != nil {
			return nil, fmt.Errorf("udp listen address %q: %w", cfg.UDP, err)
		}
		if r.udp, err = listenUDP(addr, cfg.Takeover); err != nil {
			r.Close()
			return nil, fmt.Errorf("listen udp %s: %w%s", cfg.UDP, err, inUseHint(err, cfg.Takeover))
		}
		r.sizeReadBuffer(r.udp, "udp")
		if ua, ok := r.udp.LocalAddr().(*net.UDPAddr); ok {
			ap := ua.AddrPort()
			r.stats.udpSocket.Store(&ap)
		}
	}
	if cfg.TCP != "" {
		if r.tcp, err = listenTCP("tcp", cfg.TCP, cfg.Takeover); err != nil {
			r.Close()
			return nil, err
		}
	}
	if cfg.TLS != "" {
		if r.tlsLn, err = listenTCP("tls", cfg.TLS, cfg.Takeover); err != nil {
			r.Close()
			return nil, err
		}
	}
	if cfg.Unix != "" {
		if r.unix, err = listenUnix(cfg.Unix, cfg.UnixMode, cfg.UnixGroup, len(cfg.OriginFromUnix) > 0); err != nil {
			r.Close()
			return nil, err
		}
		r.unixIno = inode(cfg.Unix)
		r.sizeReadBuffer(r.unix, "unix")
	} else if len(cfg.OriginFromUnix) > 0 {
		r.Close()
		return nil, errors.New("-origin-from unix needs -unix (the socket path)")
	}
	return r, nil
}

// sizeReadBuffer asks for cfg.UDPReadBuf and says what the kernel gave. A
// buffer smaller than asked is not fatal (relaygate works, bursts are
// dropped sooner), so it is a warning naming the fix.
func (r *Receiver) sizeReadBuffer(conn syscall.Conn, transport string) {
	rb, err := SetReadBuffer(conn, r.cfg.UDPReadBuf)
	switch {
	case err != nil:
		r.log.Warn().Err(err).Str("transport", transport).Int("asked", rb.Asked).Msg("could not size the receive buffer")
	case rb.Short():
		r.log.Warn().Str("transport", transport).Int("asked", rb.Asked).Int("granted", rb.Granted).
			Msg(fmt.Sprintf("receive buffer smaller than asked: the kernel caps it at net.core.rmem_max unless relaygate runs as root or with CAP_NET_ADMIN; raise it with: sysctl -w net.core.rmem_max=%d", rb.Asked))
	default:
		r.log.Info().Str("transport", transport).Int("asked", rb.Asked).Int("granted", rb.Granted).Bool("forced", rb.Forced).
			Msg("receive buffer")
	}
}

// UDPAddr returns the bound UDP address, or nil.
func (r *Receiver) UDPAddr() net.Addr {
	if r.udp == nil {
		return nil
	}
	return r.udp.LocalAddr()
}

// TCPAddr returns the bound TCP address, or nil.
func (r *Receiver) TCPAddr() net.Addr {
	if r.tcp == nil {
		return nil
	}
	return r.tcp.Addr()
}

// TLSAddr returns the bound TLS address, or nil.
func (r *Receiver) TLSAddr() net.Addr {
	if r.tlsLn == nil {
		return nil
	}
	return r.tlsLn.Addr()
}

// Serve delivers messages to out until ctx is done; then it stops
// accepting, reads what the datagram sockets still hold (see drainQuiet),
// closes the sockets and returns once every reader has stopped. Until then
// the consumer must keep reading out. It never closes out.
func (r *Receiver) Serve(ctx context.Context, out chan<- Message) error {
	// The readers' own context outlives ctx by the drain.
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	var wg, datagrams sync.WaitGroup
	if r.udp != nil {
		datagrams.Add(1)
		go func() { defer datagrams.Done(); r.readUDP(rctx, r.udp, out) }()
	}
	if r.unix != nil {
		datagrams.Add(1)
		go func() { defer datagrams.Done(); r.readUnix(rctx, r.unix, out) }()
	}
	if r.tcp != nil {
		wg.Add(1)
		go func() { defer wg.Done(); r.accept(rctx, &wg, r.tcp, "tcp", out) }()
	}
	if r.tlsLn != nil {
		wg.Add(1)
		go func() { defer wg.Done(); r.accept(rctx, &wg, r.tlsLn, "tls", out) }()
	}
	<-ctx.Done()
	r.drain(&datagrams)
	stop()
	r.Close()
	datagrams.Wait()
	wg.Wait()
	return nil
}

// Close releases every socket and ends every connection, including TLS
// handshakes in progress; Serve returns soon after.
func (r *Receiver) Close() {
	if r.udp != nil {
		r.stats.closeUDP()
		r.udp.Close()
	}
	if r.tcp != nil {
		r.tcp.Close()
	}
	if r.tlsLn != nil {
		r.tlsLn.Close()
	}
	r.mu.Lock()
	if r.unix != nil && !r.closed {
		r.unix.Close()
		// A takeover has renamed its own socket over the path: that one
		// stays.
		if ino := inode(r.cfg.Unix); ino != 0 && ino == r.unixIno {
			os.Remove(r.cfg.Unix)
		}
	}
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
}
