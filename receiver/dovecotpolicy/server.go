package dovecotpolicy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/netutil"
)

// MaxConns bounds the connections served at once; more wait in the
// listen backlog. Dovecot's auth process opens at most 100.
const MaxConns = 128

// Server is the bound endpoint.
type Server struct {
	ln      net.Listener
	srv     *http.Server
	served  chan struct{}
	serving bool
}

// Listen binds addr (host:port) for h.
func Listen(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &Server{
		ln: netutil.LimitListener(ln, MaxConns),
		srv: &http.Server{
			Handler: h,
			// Dovecot sends a request at once and gives up after
			// auth_policy_server_timeout_msecs (2 s); it keeps an idle
			// connection 10 s.
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       60 * time.Second,
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
