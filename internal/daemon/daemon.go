// Package daemon is the running relaygate: it binds the listeners, runs the
// pipeline goroutine (receiver → parsers → grant table → map), reloads on
// request, and serves the -metrics endpoint (/metrics, /healthz, /grants).
// cmd/relaygate turns flags into a Config; a test builds one directly,
// starts the daemon with New and Run, and drives it through its sockets
// and accessors.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/internal/fleet"
	"github.com/relaygate/relaygate/internal/grants"
	"github.com/relaygate/relaygate/internal/outputs"
	"github.com/relaygate/relaygate/internal/postfix"
	"github.com/relaygate/relaygate/parsers"
	"github.com/relaygate/relaygate/receiver"
	"github.com/relaygate/relaygate/receiver/journal"
)

// Daemon is a wired relaygate: New binds and publishes, Run serves until
// its context ends.
type Daemon struct {
	cfg     Config
	log     zerolog.Logger
	clock   cdbwriter.Clock
	recv    *receiver.Receiver
	svc     *cdbwriter.Service
	pipe    *parsers.Pipeline           // Step belongs to the pipeline goroutine once the intake runs
	origin  *originGate                 // the pipeline goroutine's, like pipe
	known   atomic.Pointer[parsers.Set] // what the receiver's program filter asks
	rstats  receiver.Stats
	wstats  cdbwriter.Stats
	reloads chan reloadable // from Reload to the pipeline goroutine
	reload  reloadStats
	mon     *monitor        // -metrics endpoint, publish health, grant snapshots
	lock    *cdbwriter.Lock // the map and state are this process's until Run returns
	intake  *intake         // receiver and parsers, running from before the state load
	journal *journal.Reader // -journal; nil without
	jin     *journalIn      // the pipeline goroutine's journal entries and pending mark

	policy       *policyEndpoint  // -dovecot-policy
	outputs      *outputs.Set     // the grants for other MTAs; nil without
	policyLogins chan policyLogin // from the endpoint's handlers to the pipeline goroutine

	seq      sequencer      // numbers the events whose durability an input awaits (seq.go)
	jsrc     *seqSource     // the journal's numbers; the pipeline goroutine's
	fleet    *fleet.Fleet   // -nats-url; nil without
	fleetGo  chan fleetLive // the catch-up hands the fleet to the pipeline goroutine
	fin      *fleetIn       // the pipeline goroutine's view of the fleet; nil unless following
	sessions *fleetSessions // refreshes this relaygate's open sessions in the fleet
	rin      *relpIn        // -relp: listener, counters, acknowledgements (relp.go); nil without
}

// New binds the listeners and publishes the initial map. When it returns
// without error Postfix can already open the map. clock is the daemon's
// time: when each message was received, and the grant table's timers.
// Cancelling ctx stops the daemon as cancelling Run's does.
//
// The sockets are bound first, the moment the map is this process's (or,
// with Takeover, beside the running relaygate's), and read from before
// the state loads: until a socket is bound a datagram meets a closed port,
// and while the state of a million grants loads (seconds) the socket
// buffer alone would overflow.
func New(ctx context.Context, cfg Config, log zerolog.Logger, clock cdbwriter.Clock) (_ *Daemon, err error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	d := &Daemon{
		cfg: cfg, log: log, clock: clock,
		reloads: make(chan reloadable, 1),

		policyLogins: make(chan policyLogin, policyQueue),
		fleetGo:      make(chan fleetLive, 1),
	}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	if !cfg.Takeover {
		// Before anything reads or writes the map or state: a second
		// relaygate on them would publish its own table over this one's.
		if d.lock, err = cdbwriter.AcquireLock(cfg.MapPath, cfg.StatePath); err != nil {
			return nil, err
		}
		cleanup = append(cleanup, func() { d.lock.Release() })
	} else {
		// One takeover at a time, decided before binding: a second one
		// that joined the port would be in the group the first steers
		// to, and what the kernel gave its socket would go with it.
		turn, err := takeoverTurn(cfg.MapPath)
		if err != nil {
			return nil, err
		}
		defer turn.Release() // held until the takeover is over
	}
	if d.recv, err = d.listen(); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, d.recv.Close)
	if err = d.listenRELP(); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, d.closeRELP)
	conf, err := loadReloadable(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if len(conf.mynet.Ignored) > 0 {
		log.Warn().Strs("entries", conf.mynet.Ignored).
			Msg("mynetworks entries that are not networks are ignored; list them in -exclude if they must never be granted")
	}
	d.pipe = parsers.NewPipeline(conf.parsers, NewCorrelator())
	d.origin = newOriginGate(conf.origin, log)
	d.known.Store(conf.parsers)
	if err := d.newJournal(conf.parsers); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, d.closeJournal)
	d.intake = d.startIntake(ctx)
	cleanup = append(cleanup, d.intake.abort, d.closeRELP) // RELP first: its sessions would wait for acks
	if cfg.Takeover {
		if d.lock, err = d.takeOver(ctx); err != nil {
			return nil, err
		}
		cleanup = append(cleanup, func() { d.lock.Release() })
	}
	// The map and state are this process's now (a predecessor's final
	// journal cursor is saved): the journal may be read.
	d.journalGo()
	table := grants.NewTable(grants.TableConfig{
		Grace: cfg.Grace, MaxSession: cfg.MaxSession, MaxEntries: cfg.MaxEntries, Exclude: conf.exclude,
	})
	// After the lock: with Takeover the predecessor held the -metrics
	// address until it exited.
	if d.mon, err = newMonitor(cfg.Metrics, clock.Now); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, d.mon.closeUnstarted)
	d.watchJournal() // /healthz reports a stuck journal reader
	// After the lock too, for the same reason.
	if d.policy, err = d.startDovecotPolicy(); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, d.policy.close)
	outs, err := outputs.Build(cfg.Outputs)
	if err != nil {
		return nil, err
	}
	d.outputs = outputs.Start(outs, outputs.Options{Logger: log, Retry: max(cfg.Flush, 100*time.Millisecond)})
	cleanup = append(cleanup, func() { d.outputs.Close(0) })
	var onSet func([]netip.Addr)
	if d.outputs != nil {
		onSet = d.outputs.Publish
	}
	// After the lock: the outbox and cursor beside the state are this
	// process's.
	if err := d.startFleet(); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, d.closeFleet)
	d.svc = cdbwriter.NewService(cdbwriter.Config{
		MapPath:   cfg.MapPath,
		StatePath: cfg.StatePath,
		Flush:     cfg.Flush,
		Logger:    log,
		Stats:     &d.wstats,
		OnPublish: d.mon.published,
		OnDurable: d.seq.durable, // the journal's, RELP's and the fleet's (seq.go)
		CatchUp:   d.fleetCatchUp,
		OnSet:     onSet,
		Grantable: parsers.Grantable,
	}, table)
	if err := d.svc.Start(clock.Now()); err != nil {
		return nil, startError(cfg.MapPath, err)
	}
	d.mon.serveMetrics(d.registry())
	d.logListening(conf, table.Len())
	return d, nil
}

// listen binds every configured listener.
func (d *Daemon) listen() (*receiver.Receiver, error) {
	cfg := d.cfg
	return receiver.Listen(receiver.Config{
		UDP: cfg.UDP, TCP: cfg.TCP, Unix: cfg.Unix, TLS: cfg.TLS,
		UnixMode: cfg.UnixMode, UnixGroup: cfg.UnixGroup,
		TLSCert: cfg.tlsFile(cfg.TLSCert), TLSKey: cfg.tlsFile(cfg.TLSKey), TLSClientCA: cfg.tlsFile(cfg.TLSClientCA),
		Allow:           cfg.Allow,
		AllowHosts:      cfg.AllowHosts,
		MaxConns:        cfg.MaxConns,
		MaxConnsPerHost: cfg.MaxConnsPerHost,
		UDPReadBuf:      cfg.UDPReadBuf,
		IdleTimeout:     cfg.IdleTimeout,
		Takeover:        cfg.Takeover,
		OriginFrom:      cfg.Origin.From,
		OriginFromTLS:   cfg.Origin.FromTLS,
		OriginFromUnix:  cfg.Origin.FromUnix,
		// The receiver drops messages of programs no parser handles before
		// parsing them; the set can change on a reload, hence the pointer.
		// Nothing is read before the intake starts, once it is set.
		Wanted: func(program []byte) bool { return d.known.Load().KnowsBytes(program) },
		Now:    d.clock.Now,
		Logger: d.log,
		Stats:  &d.rstats,
	})
}

// startError explains a failed first publish: a *cdbwriter.FileError names
// the file and the fix already; a permission problem is the map directory's.
func startError(mapPath string, err error) error {
	var fileErr *cdbwriter.FileError
	if errors.As(err, &fileErr) {
		return err
	}
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
		return fmt.Errorf("map directory %s must be writable by relaygate (it writes a temporary file there and renames it over the map): %w",
			filepath.Dir(mapPath), err)
	}
	return err
}

func (d *Daemon) logListening(conf reloadable, grants int) {
	listen := func(a net.Addr) string {
		if a == nil {
			return "off"
		}
		return a.String()
	}
	unix := d.cfg.Unix
	if unix == "" {
		unix = "off"
	}
	d.log.Info().
		Str("udp", listen(d.recv.UDPAddr())).
		Str("tcp", listen(d.recv.TCPAddr())).
		Str("tls", listen(d.recv.TLSAddr())).
		Str("relp", d.relpDesc()).
		Str("unix", unix).
		Str("journal", d.journalDesc()).
		Str("fleet", d.fleetDesc()).
		Str("map", d.cfg.MapPath).
		Str("postfix", "check_client_access cdb:"+strings.TrimSuffix(d.cfg.MapPath, ".cdb")).
		Str("state", d.cfg.StatePath).
		Str("grace", d.cfg.Grace.String()).
		Str("allow", postfix.JoinPrefixes(d.cfg.Allow)).
		Str("excluded", postfix.JoinPrefixes(conf.exclude)).
		Str("mynetworks", conf.mynet.Source).
		Str("metrics", d.mon.addr()).
		Int("grants", grants).
		Msg("relaygate listening")
}

// Run moves messages through the pipeline until ctx (or New's) is done:
// receiver → parsers → grant table → map. Then it stops receiving, drains
// what was already received, writes the map and state one last time, and
// logs every counter in one "stopped" line.
func (d *Daemon) Run(ctx context.Context) error {
	stopIntake := context.AfterFunc(ctx, d.intake.cancel)
	defer stopIntake()
	d.mon.start(d.log)
	queued, events := d.intake.running()
	for _, ev := range queued {
		d.svc.Apply(ev)
	}
	d.sessions = d.startFleetSessions()
	err := d.svc.Run(events, d.mon.reads, d.clock)
	d.sessions.close()
	d.outputs.Close(5 * time.Second) // after the final hand-off
	d.policy.close()
	close(d.mon.stopped)
	d.intake.wait()
	d.closeJournal() // after the final sync: the cursor of the last durable entry
	d.closeFleet()   // likewise; its outbox keeps what is not yet published
	d.mon.stop()
	d.lock.Release()
	if err != nil {
		return err
	}
	d.log.Info().Fields(d.logFields()).Msg("stopped")
	return nil
}

// UDPAddr is the bound UDP address, nil without -udp.
func (d *Daemon) UDPAddr() net.Addr { return d.recv.UDPAddr() }

// TCPAddr is the bound TCP address, nil without -tcp.
func (d *Daemon) TCPAddr() net.Addr { return d.recv.TCPAddr() }

// MetricsAddr is the bound -metrics address, or "off".
func (d *Daemon) MetricsAddr() string { return d.mon.addr() }

// Granted reports whether the grant table holds addr now. It asks the
// goroutine that owns the table, so it waits until Run serves, and it
// reports false once Run has returned.
func (d *Daemon) Granted(addr netip.Addr) bool {
	reply := make(chan bool, 1)
	select {
	case d.mon.reads <- func(t *grants.Table) { _, ok := t.Lookup(addr); reply <- ok }:
		return <-reply
	case <-d.mon.stopped:
		return false
	}
}
