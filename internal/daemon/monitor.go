package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/relaygate/relaygate/internal/fleet"
	"github.com/relaygate/relaygate/internal/grants"
	"github.com/rs/zerolog"
)

// monitor is what the daemon shows about itself: the publish health and
// timing the grant service reports through published, reads of the grant
// table, and the -metrics HTTP endpoint that serves them.
type monitor struct {
	publishSeconds prometheus.Histogram
	health         publishHealth
	now            func() time.Time
	reads          chan func(*grants.Table) // served by the grant service, which owns the table
	stopped        chan struct{}            // closed when the grant service has returned
	ln             net.Listener             // nil without -metrics
	srv            *http.Server
	served         chan struct{}        // closed when srv.Serve has returned
	fleet          func() *fleet.Status // for /grants; nil without -nats-url
}

// newMonitor binds addr (if set) so a bad address fails at startup like
// the syslog listeners do; serveMetrics sets up what it serves, and start
// serves it.
func newMonitor(addr string, now func() time.Time) (*monitor, error) {
	m := &monitor{
		publishSeconds: newPublishHistogram(),
		now:            now,
		reads:          make(chan func(*grants.Table)),
		stopped:        make(chan struct{}),
		served:         make(chan struct{}),
	}
	if addr == "" {
		close(m.served)
		return m, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-metrics: %w", err)
	}
	m.ln = ln
	return m, nil
}

// serveMetrics builds the HTTP server of a bound endpoint around reg.
func (m *monitor) serveMetrics(reg *prometheus.Registry) {
	if m.ln == nil {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", m.healthz)
	mux.HandleFunc("GET /grants", m.grants)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "relaygate: /metrics (Prometheus), /healthz, /grants (JSON, loopback clients only)")
	})
	m.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
}

// addr is the bound -metrics address, or "off".
func (m *monitor) addr() string {
	if m.ln == nil {
		return "off"
	}
	return m.ln.Addr().String()
}

func (m *monitor) start(log zerolog.Logger) {
	if m.srv == nil {
		return
	}
	go func() {
		defer close(m.served)
		if err := m.srv.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Str("metrics", m.addr()).Msg("metrics endpoint stopped")
		}
	}()
}

// stop ends the endpoint, giving requests in flight a moment to finish.
func (m *monitor) stop() {
	if m.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := m.srv.Shutdown(ctx); err != nil {
		m.srv.Close()
	}
	<-m.served
}

// closeUnstarted releases the listener of a daemon that failed to start.
func (m *monitor) closeUnstarted() {
	if m.ln != nil {
		m.ln.Close()
	}
}

// published is the service's OnPublish hook: it times every successful
// map write for the publish-duration histogram and keeps /healthz's view
// of whether publishing works. It runs on the goroutine that owns the
// table, at startup before the monitor serves anything.
func (m *monitor) published(now time.Time, took time.Duration, err error) {
	if err != nil {
		m.health.failed(now)
		return
	}
	m.publishSeconds.Observe(took.Seconds())
	m.health.succeeded()
}

// healthz answers 200 while the map is being published; 503 with the
// reason once the latest publish failed, until one succeeds again.
func (m *monitor) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if reason := m.health.status(); reason != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, reason)
		return
	}
	fmt.Fprintln(w, "ok")
}
