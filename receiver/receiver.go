// Package receiver is relaygate's syslog destination: UDP, TCP (newline and
// RFC 6587 octet-counted framing), TLS (RFC 5425) and a unix datagram
// socket. It turns every message into an Envelope with go-syslog v2's
// Automatic format (RFC 3164 or RFC 5424, detected per message) and hands it
// on; it knows nothing of mail daemons.
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
package receiver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Message is one received syslog message.
type Message struct {
	Envelope
	Received  time.Time // relaygate's clock at receipt; grants never use the header time
	Transport string    // "udp", "tcp", "tls" or "unix"
	Peer      string    // sender "ip:port", or the socket path for unix
	// TLSPeer names the sender's verified client certificate: its subject
	// CN, or its first DNS name when the CN is empty. Set only on "tls"
	// with TLSClientCA; empty otherwise.
	TLSPeer string
}

// Config says where to listen and whom to hear.
type Config struct {
	UDP  string // "host:port"; empty disables
	TCP  string // "host:port"; empty disables
	TLS  string // "host:port" for syslog over TLS (RFC 5425); empty disables
	Unix string // datagram socket path; empty disables

	// TLSCert and TLSKey are the PEM files of the TLS listener's certificate
	// (with any intermediates after it) and its private key; both are
	// required when TLS is set.
	TLSCert, TLSKey string
	// TLSClientCA is a PEM bundle of CA certificates. When set, a TLS client
	// must present a certificate signed by one of them, or it is refused at
	// the handshake (rsyslog: StreamDriverMode="1" with a client certificate
	// configured; syslog-ng: tls(cert-file() key-file())). When empty, any
	// client that can reach the listener and passes Allow may send.
	TLSClientCA string
	// TLSHandshakeTimeout bounds the TLS handshake, so a client that
	// connects and stays silent can't hold a connection slot;
	// DefaultTLSHandshakeTimeout if 0.
	TLSHandshakeTimeout time.Duration

	// Allow lists the networks UDP, TCP and TLS senders must come from. The
	// unix socket is guarded by its file permissions instead.
	Allow []netip.Prefix

	// AllowHosts, when not empty, lists the syslog HOSTNAME values accepted
	// (compared case-insensitively and exactly: "mx1" does not match
	// "mx1.example.org"); a message with any other HOSTNAME, or none, is
	// dropped, on every transport. (For a well-formed RFC 3164 line without
	// a HOSTNAME, the form local daemons write to a unix socket, go-syslog
	// reports relaygate's own host name.)
	//
	// This only keeps out the logs of misconfigured senders (a log host
	// forwarding everything it collects). It is not authentication:
	// HOSTNAME is whatever text the sender chose to write. Allow, the unix
	// socket's permissions and TLSClientCA decide who may send.
	AllowHosts []string

	// Wanted, when set, says whether any parser handles a program tag.
	// Messages of other programs — nearly all of a busy host's log — are
	// counted and dropped before any string is made or anything queued. It
	// is called from every reader goroutine and must be safe for that.
	Wanted func(program []byte) bool

	MaxMessage int // bytes, without trailing CR/LF/NUL; DefaultMaxMessage if 0
	MaxConns   int // concurrent TCP and TLS connections; DefaultMaxConns if 0
	// MaxConnsPerHost bounds the TCP and TLS connections, handshakes in
	// progress included, that one sender address may hold at once, so a
	// single host (a sender that reconnects without closing, or a
	// compromised one) can't take every MaxConns slot from the others. It
	// is checked at accept, before any byte is read or any TLS work done.
	// DefaultMaxConnsPerHost(MaxConns) if 0; it may not exceed MaxConns.
	MaxConnsPerHost int

	// UnixMode is the permission of the unix socket (only the 0777 bits);
	// DefaultUnixMode if 0. UnixGroup is the group that owns it, a name or
	// a numeric gid; empty is relaygate's own effective group. The socket
	// is created in a private directory beside Unix, given its group and
	// mode there, and then renamed into place, so it is never reachable
	// with wider permissions than these, whatever the umask.
	UnixMode  os.FileMode
	UnixGroup string

	// Takeover binds UDP, TCP and TLS into the SO_REUSEPORT group of the
	// relaygate already listening there (any relaygate's listeners accept
	// a later one of the same user beside them), instead of failing with
	// "address already in use"; Steer then sends new traffic here. Without
	// it every bind is exclusive: a port anyone holds is an error.
	Takeover bool

	UDPReadBuf  int           // receive buffer bytes of the UDP and unix sockets (see SetReadBuffer); DefaultUDPReadBuffer if 0
	IdleTimeout time.Duration // TCP and TLS connections idle this long are closed; 0 = never

	Now    func() time.Time
	Logger zerolog.Logger
	Stats  *Stats
}

// DefaultUDPReadBuffer is large enough to absorb a burst of a busy log host
// while the parser catches up: about 20,000 typical datagrams, 200 ms at
// 100,000 messages a second (Linux lets a socket hold twice the size asked,
// and charges each small datagram about 830 bytes of it on loopback, not its
// length).
const DefaultUDPReadBuffer = 8 << 20

// DefaultMaxConns bounds the TCP and TLS connections open at once, so a
// flood of connections can't use up relaygate's file descriptors. A log
// setup needs one connection per forwarding host.
const DefaultMaxConns = 256

// DefaultMaxConnsPerHost is the per-sender share of maxConns: an eighth,
// at least 2 and at most 16 (never more than maxConns). A forwarding host
// needs one connection per forwarding action (an rsyslog action, a
// syslog-ng destination), and one more while a predecessor it lost without
// a FIN waits for TCP keepalive to end it; 16 leaves room for several
// actions, and at the default -max-conns it takes 16 different sender
// addresses to fill every slot.
func DefaultMaxConnsPerHost(maxConns int) int {
	return min(maxConns, max(2, min(16, maxConns/8)))
}

// DefaultUnixMode lets relaygate's user and group write to the unix
// socket, and nobody else.
const DefaultUnixMode os.FileMode = 0o660

// DefaultTLSHandshakeTimeout is generous for any real client.
const DefaultTLSHandshakeTimeout = 10 * time.Second

// Stats counts what the receiver saw. All fields are safe for concurrent use.
// Snapshot returns them by name.
type Stats struct {
	UDP, TCP, TLS, Unix atomic.Int64 // messages received per transport
	NotAllowed          atomic.Int64 // datagrams and connections from senders outside Allow
	ConnsNotAllowed     atomic.Int64 // of those, the TCP and TLS connections (closed at accept)
	HostNotAllowed      atomic.Int64 // messages whose HOSTNAME is not in AllowHosts
	TooLong             atomic.Int64 // messages over MaxMessage, skipped
	Malformed           atomic.Int64 // no program tag could be read, or bad framing
	ConnectionsAccepted atomic.Int64 // TCP and TLS connections taken into service
	ConnectionsOpen     atomic.Int64 // gauge: TCP and TLS connections open now
	ConnsRefused        atomic.Int64 // connections closed at accept because MaxConns were open
	ConnsRefusedPerHost atomic.Int64 // connections closed at accept because their sender held MaxConnsPerHost
	IdleClosed          atomic.Int64 // connections closed after IdleTimeout without a message
	TLSRefused          atomic.Int64 // TLS handshakes that failed (no or untrusted client certificate, not TLS, timeout)
	Unwanted            atomic.Int64 // messages of programs no parser handles (Config.Wanted), dropped unparsed
}

// Snapshot returns every counter under a stable snake_case name, for the
// shutdown log line and metrics. ConnectionsOpen ("connections_open") is a
// gauge; all others only grow.
func (s *Stats) Snapshot() map[string]int64 {
	return map[string]int64{
		"udp_messages":                    s.UDP.Load(),
		"tcp_messages":                    s.TCP.Load(),
		"tls_messages":                    s.TLS.Load(),
		"unix_messages":                   s.Unix.Load(),
		"not_allowed":                     s.NotAllowed.Load(),
		"host_not_allowed":                s.HostNotAllowed.Load(),
		"too_long":                        s.TooLong.Load(),
		"malformed":                       s.Malformed.Load(),
		"connections_accepted":            s.ConnectionsAccepted.Load(),
		"connections_open":                s.ConnectionsOpen.Load(),
		"connections_refused_max_conns":   s.ConnsRefused.Load(),
		"connections_refused_per_host":    s.ConnsRefusedPerHost.Load(),
		"connections_refused_not_allowed": s.ConnsNotAllowed.Load(),
		"idle_closed":                     s.IdleClosed.Load(),
		"tls_refused":                     s.TLSRefused.Load(),
		"unwanted_program":                s.Unwanted.Load(),
	}
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

	warn *rateLimiter

	unixIno uint64 // the unix socket file's inode: Close removes only its own

	// drainEnd (Unix nanoseconds; 0 until Serve's context ends) is when
	// the datagram readers stop reading what is still queued.
	drainEnd atomic.Int64

	mu      sync.Mutex
	conns   map[net.Conn]netip.Addr // TCP and TLS, the raw connection → its sender's hostKey
	perHost map[netip.Addr]int      // open connections by hostKey
	closed  bool
}

// Listen binds every configured socket, so that a caller can report a bad
// address before doing anything else. It loads the TLS certificate, key and
// client CA first, and names the file in any error.
func Listen(cfg Config) (*Receiver, error) {
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxConnsPerHost <= 0 {
		cfg.MaxConnsPerHost = DefaultMaxConnsPerHost(cfg.MaxConns)
	}
	if cfg.MaxConnsPerHost > cfg.MaxConns {
		return nil, fmt.Errorf("-max-conns-per-host %d: more than -max-conns %d", cfg.MaxConnsPerHost, cfg.MaxConns)
	}
	if cfg.UnixMode == 0 {
		cfg.UnixMode = DefaultUnixMode
	}
	if cfg.UnixMode&^os.ModePerm != 0 {
		return nil, fmt.Errorf("-unix-mode %#o: only permission bits (at most 0777)", uint32(cfg.UnixMode))
	}
	if cfg.TLSHandshakeTimeout <= 0 {
		cfg.TLSHandshakeTimeout = DefaultTLSHandshakeTimeout
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
		cfg:     cfg,
		log:     cfg.Logger.With().Str("component", "receiver").Logger(),
		stats:   cfg.Stats,
		conns:   make(map[net.Conn]netip.Addr),
		perHost: make(map[netip.Addr]int),
		warn:    newRateLimiter(10 * time.Second),
	}
	for _, h := range cfg.AllowHosts {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			if r.hosts == nil {
				r.hosts = make(map[string]struct{})
			}
			r.hosts[h] = struct{}{}
		}
	}
	if cfg.TLS == "" && (cfg.TLSCert != "" || cfg.TLSKey != "" || cfg.TLSClientCA != "") {
		return nil, errors.New("-tls-cert, -tls-key and -tls-client-ca need -tls (the TLS listen address)")
	}
	if cfg.TLS != "" {
		conf, leaf, err := loadTLSConfig(cfg)
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
	}
	if cfg.TCP != "" {
		ln, err := listenTCP("tcp", cfg.TCP, cfg.Takeover)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.tcp = ln
	}
	if cfg.TLS != "" {
		ln, err := listenTCP("tls", cfg.TLS, cfg.Takeover)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.tlsLn = ln
	}
	if cfg.Unix == "" && cfg.UnixGroup != "" {
		r.Close()
		return nil, errors.New("-unix-group needs -unix (the socket path)")
	}
	if cfg.Unix != "" {
		conn, err := listenUnix(cfg.Unix, cfg.UnixMode, cfg.UnixGroup)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.unix = conn
		r.unixIno = inode(cfg.Unix)
		r.sizeReadBuffer(conn, "unix")
	}
	if r.udp == nil && r.tcp == nil && r.tlsLn == nil && r.unix == nil {
		return nil, errors.New("no listener configured: set at least one of -udp, -tcp, -tls, -unix")
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

// Close releases every socket and ends every connection, including TLS
// handshakes in progress; Serve returns soon after.
func (r *Receiver) Close() {
	if r.udp != nil {
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

func (r *Receiver) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
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

func (r *Receiver) allowed(ap netip.AddrPort) bool {
	a := ap.Addr().Unmap()
	for _, p := range r.cfg.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// source says where a message came from.
type source struct {
	transport string         // "udp", "tcp", "tls" or "unix"
	peer      string         // set for streams and the unix socket
	addr      netip.AddrPort // UDP: made into peer only if needed
	tlsPeer   string
}

// name is the sender, for the message and the log. A UDP sender's address
// is formatted only here: most datagrams are dropped before anything needs
// it.
func (s source) name() string {
	if s.peer == "" && s.addr.IsValid() {
		return s.addr.String()
	}
	return s.peer
}

// readUnix serves the unix datagram socket.
func (r *Receiver) readUnix(ctx context.Context, conn *net.UnixConn, out chan<- Message) {
	// Room for the limit and the two trailing bytes (CR LF) not counted in
	// it, and one more, so an over-long datagram is seen as such rather than
	// parsed truncated.
	buf := make([]byte, r.cfg.MaxMessage+3)
	for {
		n, addr, err := conn.ReadFrom(buf)
		if err != nil {
			if r.readFailed(ctx, conn, err, "unix") {
				return
			}
			continue
		}
		r.draining(conn, true)
		src := source{transport: "unix", peer: r.cfg.Unix}
		if addr != nil && addr.String() != "" {
			src.peer = addr.String()
		}
		if !r.datagram(ctx, buf[:n], src, out) {
			return
		}
	}
}

// readFailed handles a read error of a datagram socket: it reports true
// when the socket is closed or drained, and otherwise logs and pauses
// briefly.
func (r *Receiver) readFailed(ctx context.Context, conn interface{ SetReadDeadline(time.Time) error }, err error, transport string) bool {
	if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		return true
	}
	if errors.Is(err, os.ErrDeadlineExceeded) && r.draining(conn, false) {
		return true
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
	if len(data) > r.cfg.MaxMessage+2 || len(trimTrailingControl(data)) > r.cfg.MaxMessage {
		r.stats.TooLong.Add(1)
		r.warnf("too_long", src.name(), fmt.Sprintf("dropped %s datagram over %d bytes, the message size limit", src.transport, r.cfg.MaxMessage))
		return true
	}
	if src.transport == "udp" {
		r.stats.UDP.Add(1)
	} else {
		r.stats.Unix.Add(1)
	}
	return r.deliver(ctx, data, src, out)
}

// deliver parses raw and sends it on. It reports false once ctx is done.
func (r *Receiver) deliver(ctx context.Context, raw []byte, src source, out chan<- Message) bool {
	raw = trimTrailingControl(raw)
	// The fast path's spans serve both the program filter and the
	// envelope; only what it does not recognise pays for go-syslog.
	sp, fast := FastSpans(raw)
	if fast && r.cfg.Wanted != nil && !r.cfg.Wanted(sp.ProgramBytes(raw)) {
		r.stats.Unwanted.Add(1)
		return true
	}
	var env Envelope
	if fast {
		env = sp.Envelope(raw)
	} else {
		if len(raw) == 0 {
			return true
		}
		var err error
		// ParseEnvelope without its fast path, which just said no.
		if env, err = slowEnvelope(raw); err != nil {
			r.stats.Malformed.Add(1)
			// Untagged text is common noise (kernel lines, broken senders):
			// counted, logged only at debug.
			r.log.Debug().Err(err).Str("peer", src.name()).Msg("message without program tag")
			return true
		}
	}
	if r.hosts != nil {
		if _, ok := r.hosts[strings.ToLower(env.Host)]; !ok {
			r.stats.HostNotAllowed.Add(1)
			r.warnf("host_not_allowed", src.name(), fmt.Sprintf("dropped message from HOSTNAME %q, not in -allow-hosts", env.Host))
			return true
		}
	}
	if !fast && r.cfg.Wanted != nil && !r.cfg.Wanted([]byte(env.Program)) {
		r.stats.Unwanted.Add(1)
		return true
	}
	m := Message{Envelope: env, Received: r.cfg.Now(), Transport: src.transport, Peer: src.name(), TLSPeer: src.tlsPeer}
	select {
	case out <- m:
		return true
	case <-ctx.Done():
		return false
	}
}

// accept serves one TCP or TLS listener. A sender outside -allow is refused
// before anything else, so it never gets to a TLS handshake.
func (r *Receiver) accept(ctx context.Context, wg *sync.WaitGroup, ln *net.TCPListener, transport string, out chan<- Message) {
	backoff := 5 * time.Millisecond
	for {
		conn, err := ln.AcceptTCP()
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
			r.stats.ConnsNotAllowed.Add(1)
			r.warnf("not_allowed", ap.Addr().Unmap().String(), "refused connection from a sender outside -allow")
			conn.Close()
			continue
		}
		switch r.track(conn, hostKey(ap)) {
		case trackClosed:
			conn.Close()
			return
		case trackHostFull:
			r.stats.ConnsRefusedPerHost.Add(1)
			r.warnf("per_host", ap.String(), fmt.Sprintf("refused %s connection: its sender already has %d TCP and TLS connections open (-max-conns-per-host)", transport, r.cfg.MaxConnsPerHost))
			conn.Close()
			continue
		case trackFull:
			r.stats.ConnsRefused.Add(1)
			r.warnf("max_conns", ap.String(), fmt.Sprintf("refused %s connection: %d connections already open (-max-conns)", transport, r.cfg.MaxConns))
			conn.Close()
			continue
		}
		r.stats.ConnectionsAccepted.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.untrack(conn)
			src := source{transport: transport, peer: ap.String()}
			if transport == "tls" {
				r.serveTLS(ctx, conn, src, out)
				return
			}
			r.readStream(ctx, conn, src, out)
		}()
	}
}

type trackResult int

const (
	trackOK trackResult = iota
	trackFull
	trackHostFull
	trackClosed
)

// hostKey is the sender a connection counts against for MaxConnsPerHost:
// its address, unmapped, so that one host reaching a dual-stack listener
// as ::ffff:192.0.2.1 and as 192.0.2.1 counts once. IPv6 senders are not
// grouped by /64: log hosts in one server subnet share a /64, and grouping
// would let one of them starve its neighbours, while the senders are
// already limited to -allow (list them as /128 there, not a whole /64).
func hostKey(ap netip.AddrPort) netip.Addr {
	return ap.Addr().Unmap()
}

// track registers a connection so Close can end it, unless its sender
// already holds MaxConnsPerHost or MaxConns are already open.
func (r *Receiver) track(c net.Conn, host netip.Addr) trackResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return trackClosed
	}
	if r.perHost[host] >= r.cfg.MaxConnsPerHost {
		return trackHostFull
	}
	if len(r.conns) >= r.cfg.MaxConns {
		return trackFull
	}
	r.conns[c] = host
	r.perHost[host]++
	r.stats.ConnectionsOpen.Store(int64(len(r.conns)))
	return trackOK
}

func (r *Receiver) untrack(c net.Conn) {
	r.mu.Lock()
	if host, ok := r.conns[c]; ok {
		delete(r.conns, c)
		if r.perHost[host]--; r.perHost[host] <= 0 {
			delete(r.perHost, host)
		}
	}
	r.stats.ConnectionsOpen.Store(int64(len(r.conns)))
	r.mu.Unlock()
	c.Close()
}

// serveTLS does the handshake, bounded by TLSHandshakeTimeout and ended by
// Close, then reads the stream like TCP. raw is the tracked connection.
func (r *Receiver) serveTLS(ctx context.Context, raw net.Conn, src source, out chan<- Message) {
	conn := tls.Server(raw, r.tlsConf)
	hctx, cancel := context.WithTimeout(ctx, r.cfg.TLSHandshakeTimeout)
	err := conn.HandshakeContext(hctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil || r.isClosed() {
			return // shutting down
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no handshake within %s", r.cfg.TLSHandshakeTimeout)
		}
		r.stats.TLSRefused.Add(1)
		r.warnf("tls_refused", src.peer, "refused TLS connection: handshake failed: "+err.Error())
		return
	}
	st := conn.ConnectionState()
	if len(st.VerifiedChains) > 0 && len(st.VerifiedChains[0]) > 0 {
		src.tlsPeer = certName(st.VerifiedChains[0][0])
	}
	r.log.Debug().Str("peer", src.peer).Str("tls_peer", src.tlsPeer).
		Str("version", tls.VersionName(st.Version)).Msg("TLS connection")
	r.readStream(ctx, conn, src, out)
}

func (r *Receiver) readStream(ctx context.Context, conn net.Conn, src source, out chan<- Message) {
	fr := newFrameReader(conn, r.cfg.MaxMessage)
	name := strings.ToUpper(src.transport)
	for {
		if r.cfg.IdleTimeout > 0 {
			_ = conn.SetReadDeadline(time.Now().Add(r.cfg.IdleTimeout))
		}
		raw, err := fr.next()
		switch {
		case err == nil:
		case errors.Is(err, errTooLong):
			r.stats.TooLong.Add(1)
			r.warnf("too_long", src.peer, fmt.Sprintf("skipped a %s message over %d bytes, the message size limit; the connection goes on", name, r.cfg.MaxMessage))
			continue
		case errors.Is(err, errTruncated):
			r.stats.Malformed.Add(1)
			r.warnf("truncated_frame", src.peer, "TCP connection ended inside an octet-counted frame; its rest was dropped")
			return
		case errors.Is(err, errBadFrame):
			r.stats.Malformed.Add(1)
			r.warnf("bad_frame", src.peer, "closed "+name+" connection: "+err.Error())
			return
		case r.cfg.IdleTimeout > 0 && errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil:
			r.stats.IdleClosed.Add(1)
			// Routine (rsyslog and syslog-ng reconnect when they next
			// have something to send): rate-limited, at info level.
			r.infof("idle", src.peer, fmt.Sprintf("closed %s connection idle for %s (-idle-timeout)", name, r.cfg.IdleTimeout))
			return
		default:
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) && !isEOF(err) {
				r.log.Debug().Err(err).Str("peer", src.peer).Msg(src.transport + " connection ended")
			}
			return
		}
		if src.transport == "tls" {
			r.stats.TLS.Add(1)
		} else {
			r.stats.TCP.Add(1)
		}
		if !r.deliver(ctx, raw, src, out) {
			return
		}
	}
}

// warnf logs a warning at most once per interval and reason, with how many
// were suppressed, so a flood of bad input can't flood the log.
func (r *Receiver) warnf(reason, peer, msg string) {
	r.limited(r.log.Warn, reason, peer, msg)
}

// infof is warnf for routine events.
func (r *Receiver) infof(reason, peer, msg string) {
	r.limited(r.log.Info, reason, peer, msg)
}

func (r *Receiver) limited(level func() *zerolog.Event, reason, peer, msg string) {
	if suppressed, ok := r.warn.allow(reason); ok {
		ev := level().Str("reason", reason)
		if peer != "" {
			ev = ev.Str("peer", peer)
		}
		if suppressed > 0 {
			ev = ev.Int64("suppressed", suppressed)
		}
		ev.Msg(msg)
	}
}
