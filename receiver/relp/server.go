package relp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/relaygate/relaygate/internal/lograte"
	"github.com/relaygate/relaygate/internal/metric"
	"github.com/relaygate/relaygate/receiver"
	"github.com/rs/zerolog"
)

// Config says where to listen, whom to hear and how much to hold.
type Config struct {
	Addr string // "host:port" of the RELP listener (rsyslog's examples use port 2514, librelp's default is 20514)

	// TLS, if set, makes every connection TLS from its first byte (omrelp's
	// tls="on"; RELP has no STARTTLS in librelp). Require client
	// certificates with ClientAuth/ClientCAs in it, as the syslog TLS
	// listener does for -tls-client-ca. Nil is plain TCP.
	TLS *tls.Config

	// Allow lists the networks senders must come from; a connection from
	// anywhere else is closed at accept, before any TLS work. Empty allows
	// none.
	Allow []netip.Prefix

	// MaxConns bounds the sessions open at once (receiver.DefaultMaxConns
	// if 0) and MaxConnsPerHost those of one sender address, handshakes
	// included (receiver.DefaultMaxConnsPerHost(MaxConns) if 0).
	MaxConns, MaxConnsPerHost int

	// Window is the most syslog frames of one session that may wait for
	// their acknowledgement; with that many outstanding the session stops
	// reading (TCP then holds the sender back) until some are answered.
	// DefaultWindow if 0. rsyslog's omrelp sends at most windowSize frames
	// (128 unless set) before it waits itself.
	Window int

	// MaxMessage is the largest DATA kept (receiver.DefaultMaxMessage if
	// 0). A larger syslog frame is read through, counted, dropped and
	// answered, so that the sender's queue moves on; a larger frame of
	// any other command ends the session.
	MaxMessage int

	// IdleTimeout closes a session that has sent nothing this long
	// between frames; 0 = never (rsyslog keeps a session open and quiet
	// for as long as it has nothing to forward, and TCP keepalive ends it
	// if its host vanishes).
	IdleTimeout time.Duration
	// OpenTimeout bounds the TLS handshake and the wait for the open
	// command; FrameTimeout a frame once its first octet arrived;
	// WriteTimeout each write of answers; DrainTimeout how long a session
	// that is ending (its client's close, a protocol error, shutdown)
	// waits for the acknowledgements of frames already handed on before
	// it closes without them (the client sends them again). Defaults:
	// DefaultOpenTimeout, DefaultFrameTimeout, DefaultWriteTimeout,
	// DefaultDrainTimeout.
	OpenTimeout, FrameTimeout, WriteTimeout, DrainTimeout time.Duration

	// Control, if set, is net.ListenConfig's Control for the listening
	// socket: the daemon's way to set socket options before bind(2), such
	// as SO_REUSEPORT for a -takeover beside a running relaygate. RELP
	// needs no steering: a session that ends is sent again, whole, to
	// whichever relaygate accepts the reconnection.
	Control func(network, address string, c syscall.RawConn) error

	// Software is the relp_software offer relaygate answers with
	// ("relaygate" if empty): name[,version[,URL]], no LF.
	Software string

	Now    func() time.Time
	Logger zerolog.Logger
	Stats  *Stats
}

// Defaults of Config's zero fields.
const (
	// DefaultWindow leaves room for omrelp's windowSize up to 1024 before
	// the session pushes back: at about 100 ms from a login to its
	// durable state, a session passes about 10,000 logins a second.
	DefaultWindow       = 1024
	DefaultOpenTimeout  = 10 * time.Second
	DefaultFrameTimeout = 30 * time.Second
	DefaultWriteTimeout = 30 * time.Second
	DefaultDrainTimeout = 5 * time.Second
)

func (cfg Config) withDefaults() (Config, error) {
	if cfg.Addr == "" {
		return cfg, errors.New("relp: no listen address")
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = receiver.DefaultMaxConns
	}
	if cfg.MaxConnsPerHost <= 0 {
		cfg.MaxConnsPerHost = receiver.DefaultMaxConnsPerHost(cfg.MaxConns)
	}
	if cfg.MaxConnsPerHost > cfg.MaxConns {
		return cfg, fmt.Errorf("-max-conns-per-host %d: more than -max-conns %d", cfg.MaxConnsPerHost, cfg.MaxConns)
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = receiver.DefaultMaxMessage
	}
	// The open's offers must fit whatever the message limit.
	cfg.MaxMessage = max(cfg.MaxMessage, 4096)
	if cfg.OpenTimeout <= 0 {
		cfg.OpenTimeout = DefaultOpenTimeout
	}
	if cfg.FrameTimeout <= 0 {
		cfg.FrameTimeout = DefaultFrameTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.Software == "" {
		cfg.Software = "relaygate"
	}
	if strings.ContainsAny(cfg.Software, "\n\r") || len(cfg.Software) > 3*maxOfferValue {
		return cfg, fmt.Errorf("relp: software offer %q: no line breaks, and at most three values of 255 octets", cfg.Software)
	}
	for _, v := range strings.Split(cfg.Software, ",") {
		if len(v) > maxOfferValue {
			return cfg, fmt.Errorf("relp: software offer %q: a value over 255 octets", cfg.Software)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Stats == nil {
		cfg.Stats = new(Stats)
	}
	return cfg, nil
}

// Server is a bound RELP listener.
type Server struct {
	cfg   Config
	ln    *net.TCPListener
	log   zerolog.Logger
	stats *Stats
	warn  *lograte.Limiter

	mu       sync.Mutex
	sessions map[*session]struct{}
	perHost  map[netip.Addr]int
	closed   bool // Close was called: no new session, every one ended now
	stopping bool // Serve's context ended: sessions drain and end
}

// Listen binds the listener, so that a caller can report a bad address
// before doing anything else.
func Listen(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if _, err := net.ResolveTCPAddr("tcp", cfg.Addr); err != nil {
		return nil, fmt.Errorf("relp listen address %q: %w", cfg.Addr, err)
	}
	// Keepalive as on the syslog TCP listener: a sender that vanished
	// without a FIN gives back its connection slots within about 75 s.
	lc := net.ListenConfig{Control: cfg.Control, KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: 15 * time.Second, Interval: 15 * time.Second, Count: 4,
	}}
	// Plain TCP, as the syslog listeners: an MPTCP socket (Go's default
	// since 1.24) refuses a takeover's steering program.
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen relp %s: %w", cfg.Addr, err)
	}
	return &Server{
		cfg:      cfg,
		ln:       ln.(*net.TCPListener),
		log:      cfg.Logger.With().Str("component", "relp").Logger(),
		stats:    cfg.Stats,
		warn:     lograte.New(10 * time.Second),
		sessions: make(map[*session]struct{}),
		perHost:  make(map[netip.Addr]int),
	}, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// SyscallConn is the listening socket's (syscall.Conn), for socket options
// after bind: the daemon opens it to a -takeover's SO_REUSEPORT group and
// steers it (receiver.Receiver.AddListener).
func (s *Server) SyscallConn() (syscall.RawConn, error) { return s.ln.SyscallConn() }

// Samples describes the listener's counters (its Stats).
func (s *Server) Samples(yield func(metric.Sample)) { s.stats.Samples(yield) }

// Serve accepts sessions and hands each syslog frame to out as a Delivery,
// until ctx is done or Close is called. Once ctx is done it stops
// accepting and reading; each session then waits up to DrainTimeout for
// the acknowledgements of what it handed on, answers them, sends the
// serverclose hint and closes. Serve returns when every session has
// ended; until then the consumer must keep reading out. It never closes
// out.
func (s *Server) Serve(ctx context.Context, out chan<- Delivery) error {
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.stopping = true
		for sess := range s.sessions {
			sess.stop(reasonShutdown)
		}
		s.mu.Unlock()
		s.ln.Close()
	})
	defer stop()
	backoff := 5 * time.Millisecond
	for {
		conn, err := s.ln.AcceptTCP()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			// EMFILE and friends: back off instead of spinning.
			s.logLimited(s.log.Warn, "accept", "", "accept failed: "+err.Error())
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		ap := conn.RemoteAddr().(*net.TCPAddr).AddrPort()
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if !s.allowed(ap.Addr()) {
			s.stats.countRefused(refusedNotAllowed)
			s.logLimited(s.log.Warn, "not_allowed", ap.Addr().String(), "refused RELP connection from a sender outside -allow")
			conn.Close()
			continue
		}
		sess := newSession(s, conn, ap)
		switch s.track(sess) {
		case refusedMaxConns:
			s.stats.countRefused(refusedMaxConns)
			s.logLimited(s.log.Warn, "max_conns", ap.String(), fmt.Sprintf("refused RELP connection: %d connections already open (-max-conns)", s.cfg.MaxConns))
			conn.Close()
			continue
		case refusedPerHost:
			s.stats.countRefused(refusedPerHost)
			s.logLimited(s.log.Warn, "per_host", ap.String(), fmt.Sprintf("refused RELP connection: its sender already has %d connections open (-max-conns-per-host)", s.cfg.MaxConnsPerHost))
			conn.Close()
			continue
		case "closed":
			conn.Close()
			continue
		}
		s.stats.accepted.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.untrack(sess)
			sess.run(ctx, out)
		}()
	}
	wg.Wait()
	return nil
}

// Close ends every session at once, without waiting for
// acknowledgements (their frames are sent again by the client), and stops
// Serve. Acks that come later do nothing.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for sess := range s.sessions {
		sess.abort()
	}
	s.mu.Unlock()
	s.ln.Close()
}

func (s *Server) allowed(a netip.Addr) bool {
	for _, p := range s.cfg.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// track registers a session unless a limit forbids it; it returns "" or
// the refusal.
func (s *Server) track(sess *session) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	host := sess.peer.Addr()
	switch {
	case s.closed || s.stopping:
		return "closed"
	case s.perHost[host] >= s.cfg.MaxConnsPerHost:
		return refusedPerHost
	case len(s.sessions) >= s.cfg.MaxConns:
		return refusedMaxConns
	}
	s.sessions[sess] = struct{}{}
	s.perHost[host]++
	s.stats.open.Store(int64(len(s.sessions)))
	return ""
}

func (s *Server) untrack(sess *session) {
	s.mu.Lock()
	if _, ok := s.sessions[sess]; ok {
		delete(s.sessions, sess)
		host := sess.peer.Addr()
		if s.perHost[host]--; s.perHost[host] <= 0 {
			delete(s.perHost, host)
		}
	}
	s.stats.open.Store(int64(len(s.sessions)))
	s.mu.Unlock()
}

// handshake does the TLS handshake within OpenTimeout; it returns the TLS
// connection and the name of a verified client certificate.
func (s *Server) handshake(ctx context.Context, raw net.Conn, peer string) (net.Conn, string, bool) {
	conn := tls.Server(raw, s.cfg.TLS)
	hctx, cancel := context.WithTimeout(ctx, s.cfg.OpenTimeout)
	err := conn.HandshakeContext(hctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", false
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no handshake within %s", s.cfg.OpenTimeout)
		}
		s.stats.countRefused(refusedTLS)
		s.logLimited(s.log.Warn, "tls_refused", peer, "refused RELP TLS connection: handshake failed: "+err.Error())
		return nil, "", false
	}
	var name string
	if st := conn.ConnectionState(); len(st.VerifiedChains) > 0 && len(st.VerifiedChains[0]) > 0 {
		name = receiver.CertName(st.VerifiedChains[0][0])
	}
	return conn, name, true
}
