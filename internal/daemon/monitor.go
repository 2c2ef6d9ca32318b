package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/rs/zerolog"
)

// monitor is what the daemon shows about itself: the publish health and
// timing the grant service reports through published, reads of the grant
// table, and the -metrics HTTP endpoint that serves them.
type monitor struct {
	publishSeconds prometheus.Histogram
	health         publishHealth
	now            func() time.Time
	reads          chan func(*cdbwriter.Table) // served by the grant service, which owns the table
	stopped        chan struct{}               // closed when the grant service has returned
	ln             net.Listener                // nil without -metrics
	srv            *http.Server
	served         chan struct{} // closed when srv.Serve has returned
}

// newMonitor binds -metrics (if set) so a bad address fails at startup like
// the syslog listeners do; serving starts with start.
func newMonitor(d *daemon) (*monitor, error) {
	m := &monitor{
		publishSeconds: newPublishHistogram(),
		now:            d.now,
		reads:          make(chan func(*cdbwriter.Table)),
		stopped:        make(chan struct{}),
		served:         make(chan struct{}),
	}
	if d.cfg.metrics == "" {
		close(m.served)
		return m, nil
	}
	ln, err := net.Listen("tcp", d.cfg.metrics)
	if err != nil {
		return nil, fmt.Errorf("-metrics: %w", err)
	}
	m.ln = ln
	reg := newRegistry(d, m.publishSeconds)
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
	return m, nil
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

// grants serves the live grant table as JSON for `relaygate status`. It
// names users, so it answers loopback clients only: a metrics port opened
// to a Prometheus server elsewhere must not hand out who logged in from
// where.
func (m *monitor) grants(w http.ResponseWriter, r *http.Request) {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err != nil || !ap.Addr().Unmap().IsLoopback() {
		http.Error(w, "/grants names users and answers loopback clients only", http.StatusForbidden)
		return
	}
	reply := make(chan grantSnapshot, 1)
	read := func(t *cdbwriter.Table) {
		reply <- grantSnapshot{at: m.now(), grace: t.Grace(), grants: t.Grants()}
	}
	select {
	case m.reads <- read:
	case <-m.stopped:
		http.Error(w, "relaygate is shutting down", http.StatusServiceUnavailable)
		return
	case <-r.Context().Done():
		return
	}
	var snap grantSnapshot
	select {
	case snap = <-reply:
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(newGrantsReply(snap)); err != nil {
		// The client went away; nothing to tell it.
		return
	}
}
