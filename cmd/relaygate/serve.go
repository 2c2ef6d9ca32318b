package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/parsers"
	"github.com/relaygate/relaygate/receiver"
)

// pipelineStats counts what the parsers made of the received messages.
type pipelineStats struct {
	Unmatched atomic.Int64 // most of any mail log; counted, never logged
	Refused   atomic.Int64 // a login shape with an address that can't be granted
	Logins    atomic.Int64
}

// daemon is a wired relaygate; tests build one with newDaemon and drive it.
type daemon struct {
	cfg      serveConfig
	log      zerolog.Logger
	recv     *receiver.Receiver
	svc      *cdbwriter.Service
	parsers  *parsers.Set
	corr     *parsers.Correlator
	now      func() time.Time
	rstats   receiver.Stats
	pstats   pipelineStats
	wstats   cdbwriter.Stats
	excluded []netip.Prefix
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	d, err := newDaemon(ctx, cfg, log, time.Now)
	if err != nil {
		return err
	}
	return d.run(ctx)
}

func newLogger(cfg serveConfig, w io.Writer) zerolog.Logger {
	if cfg.logFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: !isTerminal(w)}
	}
	level, err := zerolog.ParseLevel(cfg.logLevel)
	if err != nil {
		level = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// newDaemon binds the listeners and publishes the initial map. When it
// returns without error Postfix can already open the map.
func newDaemon(ctx context.Context, cfg serveConfig, log zerolog.Logger, now func() time.Time) (*daemon, error) {
	set, err := buildParsers(cfg.parsers)
	if err != nil {
		return nil, err
	}
	d := &daemon{
		cfg: cfg, log: log, now: now, parsers: set,
		corr: parsers.NewCorrelator(correlatorEntries, correlatorMaxAge),
	}

	mynet, err := resolveMynetworks(ctx, cfg.mynetworks, cfg.postfixConfig)
	if err != nil {
		return nil, err
	}
	if len(mynet.ignored) > 0 {
		log.Warn().Strs("entries", mynet.ignored).
			Msg("mynetworks entries that are not networks are ignored; list them in -exclude if they must never be granted")
	}
	d.excluded = append(append([]netip.Prefix{}, cfg.exclude...), mynet.prefixes...)

	d.recv, err = receiver.Listen(receiver.Config{
		UDP: cfg.udp, TCP: cfg.tcp, Unix: cfg.unix,
		Allow:  cfg.allow,
		Now:    now,
		Logger: log,
		Stats:  &d.rstats,
	})
	if err != nil {
		return nil, err
	}
	table := cdbwriter.NewTable(cfg.grace, cfg.maxSession, d.excluded)
	d.svc = cdbwriter.NewService(cdbwriter.Config{
		MapPath:   cfg.mapPath,
		StatePath: cfg.statePath,
		Flush:     cfg.flush,
		Logger:    log,
		Stats:     &d.wstats,
	}, table)
	if err := d.svc.Start(now()); err != nil {
		d.recv.Close()
		return nil, err
	}
	listen := func(a net.Addr) string {
		if a == nil {
			return "off"
		}
		return a.String()
	}
	unix := cfg.unix
	if unix == "" {
		unix = "off"
	}
	log.Info().
		Str("udp", listen(d.recv.UDPAddr())).
		Str("tcp", listen(d.recv.TCPAddr())).
		Str("unix", unix).
		Str("map", cfg.mapPath).
		Str("postfix", "check_client_access cdb:"+strings.TrimSuffix(cfg.mapPath, ".cdb")).
		Str("state", cfg.statePath).
		Str("grace", cfg.grace.String()).
		Str("allow", joinPrefixes(cfg.allow)).
		Str("excluded", joinPrefixes(d.excluded)).
		Str("mynetworks", mynet.source).
		Int("grants", table.Len()).
		Msg("relaygate listening")
	return d, nil
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// run moves messages through the pipeline until ctx is done:
// receiver → parsers → grant table → map. On cancellation it stops
// receiving, drains what was already received, and writes the map and state
// one last time.
func (d *daemon) run(ctx context.Context) error {
	msgs := make(chan receiver.Message, 4096)
	events := make(chan cdbwriter.Event, 1024)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(msgs)
		_ = d.recv.Serve(ctx, msgs)
	}()
	go func() {
		defer wg.Done()
		defer close(events)
		for m := range msgs {
			if ev, ok := d.handle(m); ok {
				events <- ev
			}
		}
	}()
	err := d.svc.Run(events, d.now)
	wg.Wait()
	if err != nil {
		return err
	}
	d.log.Info().Int64("grants", d.wstats.Active.Load()).Msg("stopped")
	return nil
}

// handle parses one message; it reports a grant table event, if any.
func (d *daemon) handle(m receiver.Message) (cdbwriter.Event, bool) {
	msg := toParserMessage(m.Host, m.Program, m.PID, m.Text)
	ev, err := d.parsers.Parse(msg)
	if err != nil {
		var addrErr *parsers.AddrError
		if errors.As(err, &addrErr) {
			// A process whose own address line was unusable must not be
			// joined with an older address line of the same PID.
			d.corr.Forget(msg)
			d.pstats.Refused.Add(1)
			d.log.Debug().Str("program", m.Program).Str("host", m.Host).Err(err).Msg("login not granted")
		} else {
			d.pstats.Unmatched.Add(1)
		}
		return cdbwriter.Event{}, false
	}
	ev, ok, _ := d.corr.Feed(msg, ev, m.Received)
	if !ok {
		return cdbwriter.Event{}, false
	}
	host := m.Host
	if host == "" {
		host = m.Peer
	}
	out := cdbwriter.Event{
		Grant:   cdbwriter.Grant{Addr: ev.Addr, User: ev.User, Daemon: ev.Daemon, Host: host},
		Session: ev.Session,
		At:      m.Received,
	}
	switch ev.Kind {
	case parsers.Login:
		d.pstats.Logins.Add(1)
	case parsers.Logout:
		out.Logout = true
	default:
		return cdbwriter.Event{}, false
	}
	return out, true
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
