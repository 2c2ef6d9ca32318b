// Package receiver is relaygate's syslog destination: UDP, TCP (newline and
// RFC 6587 octet-counted framing) and a unix datagram socket. It turns every
// message into an Envelope with go-syslog v2's Automatic format (RFC 3164 or
// RFC 5424, detected per message) and hands it on; it knows nothing of mail
// daemons.
//
// The sockets are relaygate's own rather than go-syslog's Server, which can be
// crashed remotely, shrinks the UDP receive buffer to 128 KiB, silently drops
// a TCP connection on a 64 KiB line, cannot refuse a sender before accepting
// it, and panics in Kill (see docs/DESIGN.md).
package receiver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Message is one received syslog message.
type Message struct {
	Envelope
	Received  time.Time // relaygate's clock at receipt; grants never use the header time
	Transport string    // "udp", "tcp" or "unix"
	Peer      string    // sender "ip:port", or the socket path for unix
}

// Config says where to listen and whom to hear.
type Config struct {
	UDP  string // "host:port"; empty disables
	TCP  string // "host:port"; empty disables
	Unix string // datagram socket path; empty disables

	// Allow lists the networks UDP and TCP senders must come from. The unix
	// socket is guarded by its file permissions instead.
	Allow []netip.Prefix

	MaxMessage  int           // bytes; DefaultMaxMessage if 0
	UDPReadBuf  int           // SO_RCVBUF bytes; DefaultUDPReadBuffer if 0
	IdleTimeout time.Duration // TCP connections idle this long are closed; 0 = never

	Now    func() time.Time
	Logger zerolog.Logger
	Stats  *Stats
}

// DefaultUDPReadBuffer is large enough to absorb a burst of a busy log host
// while the parser catches up (the kernel caps it at net.core.rmem_max).
const DefaultUDPReadBuffer = 8 << 20

// Stats counts what the receiver saw. All fields are safe for concurrent use.
type Stats struct {
	UDP, TCP, Unix      atomic.Int64 // messages received per transport
	NotAllowed          atomic.Int64 // datagrams and connections from senders outside Allow
	TooLong             atomic.Int64 // messages over MaxMessage, skipped
	Malformed           atomic.Int64 // no program tag could be read, or bad framing
	ConnectionsAccepted atomic.Int64
}

// Receiver owns the bound sockets.
type Receiver struct {
	cfg   Config
	log   zerolog.Logger
	stats *Stats
	udp   *net.UDPConn
	tcp   *net.TCPListener
	unix  *net.UnixConn

	warn *rateLimiter

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// Listen binds every configured socket, so that a caller can report a bad
// address before doing anything else.
func Listen(cfg Config) (*Receiver, error) {
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.UDPReadBuf <= 0 {
		cfg.UDPReadBuf = DefaultUDPReadBuffer
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Stats == nil {
		cfg.Stats = new(Stats)
	}
	r := &Receiver{
		cfg:   cfg,
		log:   cfg.Logger.With().Str("component", "receiver").Logger(),
		stats: cfg.Stats,
		conns: make(map[net.Conn]struct{}),
		warn:  newRateLimiter(10 * time.Second),
	}
	if cfg.UDP != "" {
		addr, err := net.ResolveUDPAddr("udp", cfg.UDP)
		if err != nil {
			return nil, fmt.Errorf("udp listen address %q: %w", cfg.UDP, err)
		}
		if r.udp, err = net.ListenUDP("udp", addr); err != nil {
			return nil, fmt.Errorf("listen udp %s: %w", cfg.UDP, err)
		}
		// Best effort: the kernel silently caps it at net.core.rmem_max.
		_ = r.udp.SetReadBuffer(cfg.UDPReadBuf)
	}
	if cfg.TCP != "" {
		addr, err := net.ResolveTCPAddr("tcp", cfg.TCP)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("tcp listen address %q: %w", cfg.TCP, err)
		}
		if r.tcp, err = net.ListenTCP("tcp", addr); err != nil {
			r.Close()
			return nil, fmt.Errorf("listen tcp %s: %w", cfg.TCP, err)
		}
	}
	if cfg.Unix != "" {
		if err := removeStaleSocket(cfg.Unix); err != nil {
			r.Close()
			return nil, err
		}
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: cfg.Unix, Net: "unixgram"})
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("listen unixgram %s: %w", cfg.Unix, err)
		}
		_ = conn.SetReadBuffer(cfg.UDPReadBuf)
		r.unix = conn
	}
	if r.udp == nil && r.tcp == nil && r.unix == nil {
		return nil, errors.New("no listener configured: set at least one of -udp, -tcp, -unix")
	}
	return r, nil
}

// removeStaleSocket deletes a socket file left by an earlier run, but never
// a regular file someone pointed -unix at by mistake.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unix socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("unix socket %s: exists and is not a socket", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("unix socket %s: remove stale socket: %w", path, err)
	}
	return nil
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

// Close releases every socket; Serve returns soon after.
func (r *Receiver) Close() {
	if r.udp != nil {
		r.udp.Close()
	}
	if r.tcp != nil {
		r.tcp.Close()
	}
	r.mu.Lock()
	if r.unix != nil && !r.closed {
		r.unix.Close()
		os.Remove(r.cfg.Unix)
	}
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
}

// Serve delivers messages to out until ctx is done, then closes the sockets
// and returns once every reader has stopped. It never closes out.
func (r *Receiver) Serve(ctx context.Context, out chan<- Message) error {
	var wg sync.WaitGroup
	if r.udp != nil {
		wg.Add(1)
		go func() { defer wg.Done(); r.readDatagrams(ctx, r.udp, "udp", out) }()
	}
	if r.unix != nil {
		wg.Add(1)
		go func() { defer wg.Done(); r.readDatagrams(ctx, r.unix, "unix", out) }()
	}
	if r.tcp != nil {
		wg.Add(1)
		go func() { defer wg.Done(); r.accept(ctx, &wg, out) }()
	}
	<-ctx.Done()
	r.Close()
	wg.Wait()
	return nil
}

func (r *Receiver) allowed(ap netip.AddrPort) bool {
	a := ap.Addr().Unmap()
	for _, p := range r.cfg.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (r *Receiver) readDatagrams(ctx context.Context, conn net.PacketConn, transport string, out chan<- Message) {
	// One byte more than the limit, so an over-long datagram is seen as such
	// rather than parsed truncated.
	buf := make([]byte, r.cfg.MaxMessage+1)
	udp, isUDP := conn.(*net.UDPConn)
	for {
		var (
			n    int
			peer string
			err  error
		)
		if isUDP {
			var ap netip.AddrPort
			n, ap, err = udp.ReadFromUDPAddrPort(buf)
			if err == nil && !r.allowed(ap) {
				r.stats.NotAllowed.Add(1)
				r.warnf("not_allowed", ap.Addr().Unmap().String(), "dropped datagram from a sender outside -allow")
				continue
			}
			peer = ap.String()
		} else {
			var addr net.Addr
			n, addr, err = conn.ReadFrom(buf)
			peer = r.cfg.Unix
			if addr != nil && addr.String() != "" {
				peer = addr.String()
			}
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			r.log.Warn().Err(err).Str("transport", transport).Msg("read error")
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if n > r.cfg.MaxMessage {
			r.stats.TooLong.Add(1)
			r.warnf("too_long", peer, "dropped over-long datagram")
			continue
		}
		if transport == "udp" {
			r.stats.UDP.Add(1)
		} else {
			r.stats.Unix.Add(1)
		}
		if !r.deliver(ctx, buf[:n], transport, peer, out) {
			return
		}
	}
}

// deliver parses raw and sends it on. It reports false once ctx is done.
func (r *Receiver) deliver(ctx context.Context, raw []byte, transport, peer string, out chan<- Message) bool {
	env, err := ParseEnvelope(raw)
	if err != nil {
		if errors.Is(err, errEmpty) {
			return true
		}
		r.stats.Malformed.Add(1)
		// Untagged text is common noise (kernel lines, broken senders):
		// counted, logged only at debug.
		r.log.Debug().Err(err).Str("peer", peer).Msg("message without program tag")
		return true
	}
	m := Message{Envelope: env, Received: r.cfg.Now(), Transport: transport, Peer: peer}
	select {
	case out <- m:
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *Receiver) accept(ctx context.Context, wg *sync.WaitGroup, out chan<- Message) {
	backoff := 5 * time.Millisecond
	for {
		conn, err := r.tcp.AcceptTCP()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off instead of spinning (go-syslog's
			// accept loop retries at full speed).
			r.warnf("accept", "", "accept failed: "+err.Error())
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		ap := conn.RemoteAddr().(*net.TCPAddr).AddrPort()
		if !r.allowed(ap) {
			r.stats.NotAllowed.Add(1)
			r.warnf("not_allowed", ap.Addr().Unmap().String(), "refused connection from a sender outside -allow")
			conn.Close()
			continue
		}
		r.stats.ConnectionsAccepted.Add(1)
		if !r.track(conn) {
			conn.Close()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.untrack(conn)
			r.readStream(ctx, conn, ap.String(), out)
		}()
	}
}

func (r *Receiver) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *Receiver) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	c.Close()
}

func (r *Receiver) readStream(ctx context.Context, conn net.Conn, peer string, out chan<- Message) {
	fr := newFrameReader(conn, r.cfg.MaxMessage)
	for {
		if r.cfg.IdleTimeout > 0 {
			_ = conn.SetReadDeadline(time.Now().Add(r.cfg.IdleTimeout))
		}
		raw, err := fr.next()
		switch {
		case err == nil:
		case errors.Is(err, errTooLong):
			r.stats.TooLong.Add(1)
			r.warnf("too_long", peer, fmt.Sprintf("skipped a TCP message over %d bytes; the connection goes on", r.cfg.MaxMessage))
			continue
		case errors.Is(err, errBadFrame):
			r.stats.Malformed.Add(1)
			r.warnf("bad_frame", peer, "closed TCP connection: "+err.Error())
			return
		default:
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) && !isEOF(err) {
				r.log.Debug().Err(err).Str("peer", peer).Msg("tcp connection ended")
			}
			return
		}
		r.stats.TCP.Add(1)
		if !r.deliver(ctx, raw, "tcp", peer, out) {
			return
		}
	}
}

// warnf logs a warning at most once per interval and reason, with how many
// were suppressed, so a flood of bad input can't flood the log.
func (r *Receiver) warnf(reason, peer, msg string) {
	if suppressed, ok := r.warn.allow(reason); ok {
		ev := r.log.Warn().Str("reason", reason)
		if peer != "" {
			ev = ev.Str("peer", peer)
		}
		if suppressed > 0 {
			ev = ev.Int64("suppressed", suppressed)
		}
		ev.Msg(msg)
	}
}
