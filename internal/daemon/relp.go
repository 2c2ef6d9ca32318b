package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/relaygate/relaygate/internal/durable"
	"github.com/relaygate/relaygate/internal/grants"
	"github.com/relaygate/relaygate/internal/metric"
	"github.com/relaygate/relaygate/receiver"
	"github.com/relaygate/relaygate/receiver/relp"
)

// RELPConfig is -relp: a listener for rsyslog's RELP (omrelp) that answers
// each message only once its login is durable (docs/RELP.md).
type RELPConfig struct {
	Addr string // "host:port"; "" disables
	// TLS is -relp-tls: TLS from the first byte with -tls-cert and
	// -tls-key, and client certificates required with -tls-client-ca.
	TLS bool
}

// check is Config.Check's part for -relp.
func (c RELPConfig) check(cert, key string) error {
	switch {
	case c.TLS && c.Addr == "":
		return errors.New("-relp-tls is only used with -relp")
	case c.TLS && (cert == "" || key == ""):
		return errors.New("-relp-tls needs -tls-cert and -tls-key")
	case c.Addr != "":
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return fmt.Errorf("-relp %q: want host:port, such as 0.0.0.0:2514: %w", c.Addr, err)
		}
	}
	return nil
}

// tlsFile is a -tls-* file for the receiver, which refuses them without
// -tls: with -relp-tls and no -tls they are RELP's alone (listenRELP).
func (c Config) tlsFile(file string) string {
	if c.TLS == "" && c.RELP.TLS {
		return ""
	}
	return file
}

// relpQueue is the RELP messages on their way to the pipeline goroutine,
// as deliveries and as admitted messages: as many as rsyslog's largest
// sensible window.
const relpQueue = 1024

// relpIn is -relp: the listener, its counters, and the acknowledgements
// that wait for their logins to be durable.
//
// How a message is answered: the session answers its frames in the order
// received, each once it and every frame before it are acknowledged
// (receiver/relp). A message whose login makes a grant-table event is
// acknowledged once that event is durable: the pipeline goroutine numbers
// it in the daemon's one sequence (d.seq, seq.go) as RELP's login number n,
// and acks waits for n (durable.Queue); OnDurable maps the durable Seq
// back to n. A message that makes no event (not a login, refused, a
// program no parser handles, malformed) is acknowledged at once: its
// session still answers it only after every message before it, logins
// included, so an answer never runs ahead of a login the sender would
// then not send again. Without a state file nothing is durable, and a
// login is acknowledged once handed to the grant table.
type relpIn struct {
	srv   *relp.Server
	stats relp.Stats
	msgs  chan relpMessage // serveRELP → the pipeline goroutine
	done  chan struct{}    // closed once serveRELP has sent its last message
	src   *seqSource       // RELP's numbers in d.seq; the pipeline goroutine's
	n     uint64           // the last login numbered; the pipeline goroutine's
	acks  durable.Queue    // acknowledgements by login number
}

// relpMessage is a RELP message past the receiver's checks, with its
// acknowledgement.
type relpMessage struct {
	receiver.Message
	ack  func()
	gone func() bool // its session has ended: ack does nothing
}

// listenRELP binds -relp (into the running relaygate's SO_REUSEPORT group
// under -takeover) and adds it to the receiver's takeover group. Nothing
// without -relp.
func (d *Daemon) listenRELP() error {
	cfg := d.cfg
	if cfg.RELP.Addr == "" {
		return nil
	}
	in := &relpIn{msgs: make(chan relpMessage, relpQueue), done: make(chan struct{})}
	rc := relp.Config{
		Addr:  cfg.RELP.Addr,
		Allow: cfg.Allow, MaxConns: cfg.MaxConns, MaxConnsPerHost: cfg.MaxConnsPerHost,
		Software: relpSoftware(cfg.Version),
		Now:      d.clock.Now,
		Logger:   d.log,
		Stats:    &in.stats,
	}
	if cfg.RELP.TLS {
		conf, leaf, err := receiver.LoadTLSConfig(cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA)
		if err != nil {
			return err
		}
		if now := d.clock.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
			d.log.Warn().Str("file", cfg.TLSCert).Time("not_before", leaf.NotBefore).Time("not_after", leaf.NotAfter).
				Msg("TLS certificate is not valid now; RELP clients that verify it will refuse to send")
		}
		rc.TLS = conf
	}
	if cfg.Takeover {
		rc.Control = receiver.JoinGroup
	}
	srv, err := relp.Listen(rc)
	if err != nil {
		return err
	}
	if err := d.recv.AddListener("relp", srv); err != nil {
		srv.Close()
		return err
	}
	in.srv = srv
	d.rin = in
	return nil
}

// relpSoftware is the relp_software offer: "relaygate,VERSION".
func relpSoftware(version string) string {
	version = strings.TrimSpace(strings.NewReplacer(",", " ", "\n", " ", "\r", " ").Replace(version))
	if version == "" || len(version) > 255 {
		return "relaygate"
	}
	return "relaygate," + version
}

// startRELP serves -relp for the intake until ctx ends and every session
// has drained (relp.Server.Serve returns within its DrainTimeout), putting
// each message through the receiver's checks (Receiver.Admit) on its way
// to the pipeline goroutine; a message they drop is acknowledged at once.
// The returned channel is closed once the last message is on its way: the
// pipeline goroutine must read until then, and the grant service run, so
// that the draining sessions get their answers.
func (d *Daemon) startRELP(ctx context.Context, in *intake) <-chan struct{} {
	if d.rin == nil {
		done := make(chan struct{})
		close(done)
		return done
	}
	r := d.rin
	deliveries := make(chan relp.Delivery, relpQueue)
	in.readers.Add(2)
	go func() {
		defer in.readers.Done()
		defer close(deliveries)
		if err := r.srv.Serve(ctx, deliveries); err != nil {
			d.log.Error().Err(err).Msg("relp listener failed")
		}
	}()
	go func() {
		defer in.readers.Done()
		defer close(r.done)
		for dl := range deliveries {
			m, ok := d.recv.Admit(dl.Raw, "relp", dl.Peer, dl.TLSPeer, dl.Received)
			if !ok {
				dl.Ack()
				continue
			}
			r.msgs <- relpMessage{Message: m, ack: dl.Ack, gone: dl.Gone}
		}
	}()
	return r.done
}

// relpMessages is the pipeline goroutine's RELP channel; nil (never ready)
// without -relp.
func (d *Daemon) relpMessages() <-chan relpMessage {
	if d.rin == nil {
		return nil
	}
	return d.rin.msgs
}

// handleRELP runs one RELP message through the pipeline, like a syslog
// message, and has it answered once its event is durable (see relpIn).
//
// A two-line daemon's address line (parsers.Connect) makes no event and is
// answered at once: its address lives in the correlator's memory until the
// success line comes, so a crash in between loses that one login
// (docs/RELP.md, "What is not").
func (d *Daemon) handleRELP(m relpMessage, events chan<- grants.Event) {
	ev, ok := d.handle(m.Message)
	if !ok {
		m.ack()
		return
	}
	d.fleetPublish(ev, &m.Message)
	if d.cfg.StatePath == "" {
		events <- ev
		m.ack()
		return
	}
	r := d.rin
	if r.src == nil {
		r.src = d.seq.source(r.acks.Durable)
	}
	r.n++
	ev.Seq = d.seq.number(r.src, r.n)
	// AddUnless: while the state file cannot be written, the acks of
	// sessions that ended meanwhile are let go rather than kept until it
	// can, however often a sender reconnects and sends again.
	r.acks.AddUnless(r.n, m.ack, m.gone)
	events <- ev
}

// drainRELP handles what RELP queued before it stopped (startRELP's done
// is closed): the pipeline goroutine's last RELP messages.
func (d *Daemon) drainRELP(events chan<- grants.Event) {
	for {
		select {
		case m := <-d.relpMessages():
			d.handleRELP(m, events)
		default:
			return
		}
	}
}

// closeRELP ends every RELP session at once, without waiting for
// acknowledgements (their messages are sent again): a start that failed.
func (d *Daemon) closeRELP() {
	if d.rin != nil {
		d.rin.srv.Close()
	}
}

// relpSource is the RELP listener's counters, nil without -relp.
func (d *Daemon) relpSource() metric.Source {
	if d.rin == nil {
		return nil
	}
	return &d.rin.stats
}

// relpDesc is the startup line's relp field.
func (d *Daemon) relpDesc() string {
	switch {
	case d.rin == nil:
		return "off"
	case d.cfg.RELP.TLS:
		return d.rin.srv.Addr().String() + " (TLS)"
	}
	return d.rin.srv.Addr().String()
}

// RELPAddr is the bound -relp address, nil without -relp.
func (d *Daemon) RELPAddr() net.Addr {
	if d.rin == nil {
		return nil
	}
	return d.rin.srv.Addr()
}
