package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	Events    eventCounts // by daemon and kind, for relaygate_events_total
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
	hup      <-chan os.Signal            // SIGHUP: reload rules and exclusions; nil in tests
	reloads  chan reloadable             // from the reload goroutine to the pipeline
	known    atomic.Pointer[parsers.Set] // what the receiver's program filter asks
	mon      *monitor                    // -metrics endpoint, publish health, grant snapshots
	lock     *cdbwriter.Lock             // the map and state are this process's until run returns
	intake   *intake                     // receiver and parsers, running from before the state load
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	// The heap is mostly the grant table, which lives long; the garbage is
	// per message and small. Go's default (GOGC=100) lets the heap grow to
	// twice the table before it collects, about 200 MB at a million grants;
	// at 50 it stays near one and a half times, for collections that cost
	// little when little is garbage. GOGC, when set, decides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	// Ask for SIGHUP before anything is bound, so an early reload request is
	// never the default "terminate".
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	d, err := newDaemon(ctx, cfg, log, time.Now)
	if err != nil {
		return err
	}
	d.hup = hup
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

// reloadable is the part of the configuration SIGHUP re-reads: the rules
// file, the exclusion file and Postfix's mynetworks.
type reloadable struct {
	parsers *parsers.Set
	exclude []netip.Prefix
	mynet   mynetworksResult
}

// loadReloadable reads every file the reloadable configuration comes from.
// On error nothing is applied: the caller keeps the configuration it has.
// Every file is read even after one fails, and the error names each
// failure, so that one SIGHUP (or one failed start) shows everything to fix
// rather than one problem per attempt.
func loadReloadable(ctx context.Context, cfg serveConfig) (reloadable, error) {
	var r reloadable
	var errs []error
	var err error
	if r.parsers, err = buildParsers(cfg.parsers); err != nil {
		errs = append(errs, err)
	}
	if r.mynet, err = resolveMynetworks(ctx, cfg.mynetworks, cfg.postfixConfig); err != nil {
		errs = append(errs, err)
	}
	r.exclude = append(append([]netip.Prefix{}, cfg.exclude...), r.mynet.prefixes...)
	if cfg.excludeFile != "" {
		fromFile, err := readExcludeFile(cfg.excludeFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("-exclude-file: %w", err))
		}
		r.exclude = append(r.exclude, fromFile...)
	}
	if len(errs) > 0 {
		return reloadable{}, joinErrors(errs)
	}
	return r, nil
}

// errorList is errors.Join on one line: the log line and the startup error
// name every failure, "; "-separated, and errors.Is/As see each of them.
type errorList []error

func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return errorList(errs)
}

func (l errorList) Error() string {
	s := make([]string, len(l))
	for i, err := range l {
		s[i] = err.Error()
	}
	return fmt.Sprintf("%d errors: %s", len(l), strings.Join(s, "; "))
}

func (l errorList) Unwrap() []error { return l }

// newDaemon binds the listeners and publishes the initial map. When it
// returns without error Postfix can already open the map.
//
// The sockets are bound first, the moment the map is this process's (or,
// with -takeover, beside the running relaygate's), and read from before
// the state loads: until a socket is bound a datagram meets a closed port,
// and while the state of a million grants loads (seconds) the socket
// buffer alone would overflow.
func newDaemon(ctx context.Context, cfg serveConfig, log zerolog.Logger, now func() time.Time) (_ *daemon, err error) {
	d := &daemon{
		cfg: cfg, log: log, now: now,
		corr:    parsers.NewCorrelator(correlatorEntries, correlatorMaxAge),
		reloads: make(chan reloadable, 1),
	}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	if !cfg.takeover {
		// Before anything reads or writes the map or state: a second
		// relaygate on them would publish its own table over this one's.
		if d.lock, err = cdbwriter.AcquireLock(cfg.mapPath, cfg.statePath); err != nil {
			return nil, err
		}
		cleanup = append(cleanup, func() { d.lock.Release() })
	} else {
		// One takeover at a time, decided before binding: a second one
		// that joined the port would be in the group the first steers
		// to, and what the kernel gave its socket would go with it.
		turn, err := takeoverTurn(cfg.mapPath)
		if err != nil {
			return nil, err
		}
		defer turn.Release() // held until the takeover is over
	}
	d.recv, err = receiver.Listen(receiver.Config{
		UDP: cfg.udp, TCP: cfg.tcp, Unix: cfg.unix, TLS: cfg.tls,
		UnixMode: cfg.unixMode, UnixGroup: cfg.unixGroup,
		TLSCert: cfg.tlsCert, TLSKey: cfg.tlsKey, TLSClientCA: cfg.tlsClientCA,
		Allow:           cfg.allow,
		AllowHosts:      cfg.allowHosts,
		MaxConns:        cfg.maxConns,
		MaxConnsPerHost: cfg.maxConnsPerHost,
		UDPReadBuf:      cfg.udpReadBuf,
		IdleTimeout:     cfg.idleTimeout,
		Takeover:        cfg.takeover,
		// The receiver drops messages of programs no parser handles before
		// parsing them; the set can change on SIGHUP, hence the pointer.
		// Nothing is read before the intake starts, once it is set.
		Wanted: func(program []byte) bool { return d.known.Load().KnowsBytes(program) },
		Now:    now,
		Logger: log,
		Stats:  &d.rstats,
	})
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, d.recv.Close)
	conf, err := loadReloadable(ctx, cfg)
	if err != nil {
		return nil, err
	}
	d.parsers = conf.parsers
	mynet := conf.mynet
	if len(mynet.ignored) > 0 {
		log.Warn().Strs("entries", mynet.ignored).
			Msg("mynetworks entries that are not networks are ignored; list them in -exclude if they must never be granted")
	}
	d.excluded = conf.exclude
	d.known.Store(conf.parsers)
	d.intake = d.startIntake(ctx)
	cleanup = append(cleanup, d.intake.abort)
	if cfg.takeover {
		if d.lock, err = d.takeOver(ctx); err != nil {
			return nil, err
		}
		cleanup = append(cleanup, func() { d.lock.Release() })
	}
	table := cdbwriter.NewTable(cdbwriter.TableConfig{
		Grace: cfg.grace, MaxSession: cfg.maxSession, MaxEntries: cfg.maxEntries, Exclude: d.excluded,
	})
	// After the lock: with -takeover the predecessor held the -metrics
	// address until it exited.
	if d.mon, err = newMonitor(d); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, d.mon.closeUnstarted)
	d.svc = cdbwriter.NewService(cdbwriter.Config{
		MapPath:   cfg.mapPath,
		StatePath: cfg.statePath,
		Flush:     cfg.flush,
		Logger:    log,
		Stats:     &d.wstats,
		OnPublish: d.mon.published,
		Grantable: parsers.Grantable,
	}, table)
	if err := d.svc.Start(now()); err != nil {
		var fileErr *cdbwriter.FileError
		if errors.As(err, &fileErr) {
			return nil, err // it names the file and the fix
		}
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
			return nil, fmt.Errorf("map directory %s must be writable by relaygate (it writes a temporary file there and renames it over the map): %w",
				filepath.Dir(cfg.mapPath), err)
		}
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
		Str("tls", listen(d.recv.TLSAddr())).
		Str("unix", unix).
		Str("map", cfg.mapPath).
		Str("postfix", "check_client_access cdb:"+strings.TrimSuffix(cfg.mapPath, ".cdb")).
		Str("state", cfg.statePath).
		Str("grace", cfg.grace.String()).
		Str("allow", joinPrefixes(cfg.allow)).
		Str("excluded", joinPrefixes(d.excluded)).
		Str("mynetworks", mynet.source).
		Str("metrics", d.mon.addr()).
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
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.watchReloads(ctx)
	}()
	d.mon.start(d.log)
	queued, events := d.intake.running()
	for _, ev := range queued {
		d.svc.Apply(ev)
	}
	err := d.svc.Run(events, d.mon.reads, d.now)
	close(d.mon.stopped)
	wg.Wait()
	d.intake.wait()
	d.mon.stop()
	d.lock.Release()
	if err != nil {
		return err
	}
	d.log.Info().Fields(d.counters()).Msg("stopped")
	return nil
}

// pipeline parses messages and applies reloads; it is the only goroutine
// that touches the parser set and the correlator.
func (d *daemon) pipeline(msgs <-chan receiver.Message, events chan<- cdbwriter.Event) {
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				return
			}
			if ev, ok := d.handle(m); ok {
				events <- ev
			}
		case r := <-d.reloads:
			d.parsers = r.parsers
			d.known.Store(r.parsers)
			events <- cdbwriter.Event{Kind: cdbwriter.EventExclude, Exclude: r.exclude, At: d.now()}
		}
	}
}

// watchReloads re-reads the reloadable configuration on SIGHUP. A bad new
// file is rejected with its error and the running configuration stays.
func (d *daemon) watchReloads(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.hup:
			d.reload(ctx)
		}
	}
}

func (d *daemon) reload(ctx context.Context) {
	conf, err := loadReloadable(ctx, d.cfg)
	if err != nil {
		n := 1
		var l errorList
		if errors.As(err, &l) {
			n = len(l)
		}
		d.log.Error().Err(err).Int("errors", n).Msg("reload rejected; the running configuration stays")
		return
	}
	select {
	case d.reloads <- conf:
		d.log.Info().Int("parsers", len(conf.parsers.Parsers())).Str("excluded", joinPrefixes(conf.exclude)).Msg("reloaded")
	case <-ctx.Done():
	}
}

// counters is every count the daemon keeps, for the shutdown log line.
func (d *daemon) counters() map[string]any {
	var events int64
	for _, n := range d.pstats.Events.snapshot() {
		events += n
	}
	c := map[string]any{
		"received_udp":                    d.rstats.UDP.Load(),
		"received_tcp":                    d.rstats.TCP.Load(),
		"received_tls":                    d.rstats.TLS.Load(),
		"received_unix":                   d.rstats.Unix.Load(),
		"dropped_not_allowed":             d.rstats.NotAllowed.Load(),
		"dropped_host_not_allowed":        d.rstats.HostNotAllowed.Load(),
		"dropped_too_long":                d.rstats.TooLong.Load(),
		"dropped_malformed":               d.rstats.Malformed.Load(),
		"dropped_unwanted_program":        d.rstats.Unwanted.Load(),
		"connections_refused_max_conns":   d.rstats.ConnsRefused.Load(),
		"connections_refused_per_host":    d.rstats.ConnsRefusedPerHost.Load(),
		"connections_refused_not_allowed": d.rstats.ConnsNotAllowed.Load(),
		"tls_refused":                     d.rstats.TLSRefused.Load(),
		"events":                          events,
		"unmatched":                       d.pstats.Unmatched.Load(),
		"refused":                         d.pstats.Refused.Load(),
		"logins":                          d.pstats.Logins.Load(),
		"granted":                         d.wstats.Granted.Load(),
		"extended":                        d.wstats.Extended.Load(),
		"excluded":                        d.wstats.Excluded.Load(),
		"expired":                         d.wstats.Expired.Load(),
		"evicted":                         d.wstats.Evicted.Load(),
		"publishes":                       d.wstats.Publishes.Load(),
		"publish_errors":                  d.wstats.PublishErrors.Load(),
		"state_errors":                    d.wstats.StateErrors.Load(),
		"carried_over":                    d.wstats.CarriedOver.Load(),
		"grants":                          d.wstats.Active.Load(),
	}
	return c
}

// handle parses one message; it reports a grant table event, if any.
func (d *daemon) handle(m receiver.Message) (cdbwriter.Event, bool) {
	msg := toParserMessage(m.Host, m.Program, m.PID, m.Text)
	ev, err := d.parsers.Parse(msg)
	if err == nil {
		d.pstats.Events.add(ev.Daemon, ev.Kind)
	}
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
		out.Kind = cdbwriter.EventLogin
	case parsers.Logout:
		out.Kind = cdbwriter.EventLogout
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
