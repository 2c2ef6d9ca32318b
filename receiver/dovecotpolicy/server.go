package dovecotpolicy

import (
	"container/list"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// MaxConns bounds the connections held at once. When a new connection
// comes and MaxConns are open, the oldest is closed to make room: every
// answer says "Connection: close", so each connection Dovecot opens lives
// for one request, a few milliseconds, and whoever holds connections open
// (any local user can open as many as they like to a loopback port, and
// hold them without sending a byte, or with half a request) holds the
// oldest ones. Dovecot's auth process opens at most 100 at once.
const MaxConns = 1024

// The server's timeouts. Dovecot sends a request at once, headers and body
// in one go, and gives up after auth_policy_server_timeout_msecs (2 s).
const (
	readHeaderTimeout = time.Second
	readTimeout       = 2 * time.Second
	writeTimeout      = 5 * time.Second
	idleTimeout       = 5 * time.Second // no connection is kept idle: every answer closes it
)

// Server is the bound endpoint.
type Server struct {
	ln      *connLimiter
	srv     *http.Server
	served  chan struct{}
	serving bool
}

// Listen binds addr (host:port) for h. Connections closed to make room
// are counted in h's Stats when h is a *Handler.
func Listen(addr string, h http.Handler) (*Server, error) { return listen(addr, h, MaxConns) }

func listen(addr string, h http.Handler, maxConns int) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	stats := new(Stats)
	if hh, ok := h.(*Handler); ok {
		stats = hh.Stats()
	}
	return &Server{
		ln: &connLimiter{Listener: ln, max: maxConns, stats: stats},
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    16 << 10,
		},
		served: make(chan struct{}),
	}, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves in a goroutine of its own until Close.
func (s *Server) Serve(log zerolog.Logger) {
	s.serving = true
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Str("dovecot_policy", s.Addr().String()).Msg("Dovecot auth policy endpoint stopped")
		}
	}()
}

// Close stops the endpoint, giving requests in flight a moment to finish.
// A Server that never served just releases its socket.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	s.ln.Close()
	if s.serving {
		<-s.served
	}
}

// connLimiter is a listener that holds at most max connections, closing
// the oldest to make room for a new one: never waiting, so that a
// connection from Dovecot is always accepted at once.
type connLimiter struct {
	net.Listener
	max   int
	stats *Stats

	mu    sync.Mutex
	conns list.List // of *limitedConn, oldest first
}

func (l *connLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &limitedConn{Conn: c, l: l}
	var oldest *limitedConn
	l.mu.Lock()
	if l.conns.Len() >= l.max {
		oldest = l.conns.Remove(l.conns.Front()).(*limitedConn)
		oldest.elem = nil
	}
	lc.elem = l.conns.PushBack(lc)
	l.mu.Unlock()
	if oldest != nil {
		// The server's goroutine for it sees its reads fail and closes
		// it again (a no-op).
		_ = oldest.Conn.Close()
		l.stats.evicted.Add(1)
	}
	return lc, nil
}

// open is how many connections are held.
func (l *connLimiter) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns.Len()
}

type limitedConn struct {
	net.Conn
	l    *connLimiter
	elem *list.Element // nil once out of the list; under l.mu
}

func (c *limitedConn) Close() error {
	c.l.mu.Lock()
	if c.elem != nil {
		c.l.conns.Remove(c.elem)
		c.elem = nil
	}
	c.l.mu.Unlock()
	return c.Conn.Close()
}
