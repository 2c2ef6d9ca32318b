package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Fleet is a running relaygate's connection to its fleet: the publisher
// (outbox and sender) and the follower (an ephemeral consumer of the stream
// that it makes again when lost, the cursor). Start it with Start, stop it with Close.
type Fleet struct {
	cfg     Config
	log     zerolog.Logger
	now     func() time.Time
	stats   Stats
	nc      *nats.Conn
	js      jetstream.JetStream
	subject string // this relaygate's subject: Subject.Name
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	streamOK atomic.Bool // the stream exists (created or found)
	streamMu sync.Mutex  // one stream lookup or creation at a time

	// Publishing: Publish → in → runOutbox (owns outbox) → send → runSender → results.
	in      chan pending
	outbox  *Outbox
	send    chan []*outEntry
	results chan []bool
	kick    chan struct{} // reconnected: send at once
	ackWait time.Duration // runSender's: how long the next batch waits for its PubAcks
	// refollow: reconnected; the follower makes its consumer again at
	// once rather than after its heartbeats are missed.
	refollow chan struct{}

	// Following: runFollower → items → the daemon (CatchUp, then its
	// pipeline goroutine).
	items     chan Item
	ready     chan struct{} // closed once the follower's consumer exists
	readyOnce sync.Once
	pending0  atomic.Uint64 // what the first consumer had to deliver when it was made
	target    atomic.Uint64 // the stream's last sequence then
	started   atomic.Pointer[string]
	cursor    cursorState
	warnAt    atomic.Int64 // unix ns of the last rate-limited warning
}

type pending struct {
	id string
	ev Event
}

// Item is one message of the stream, as the follower read it.
type Item struct {
	Seq     uint64    // its stream sequence
	Stream  int64     // the stream's creation time (Unix ns): Seq is of that stream
	Stored  time.Time // when the stream stored it
	Pending uint64    // messages after it, when it was delivered
	Own     bool      // published by this relaygate
	Event   Event     // valid when Err is nil and Own is false
	Err     error     // Decode's verdict
}

// Start connects to the fleet (in the background: a fleet that cannot be
// reached now is retried for as long as the relaygate runs), reads back
// the outbox and the cursor, and starts publishing and following as cfg
// says. It fails only on what retrying cannot fix: a bad URL, a TLS or
// credentials file that cannot be read, an outbox that cannot be opened.
func Start(cfg Config, log zerolog.Logger, now func() time.Time) (*Fleet, error) {
	urls, err := cfg.ServerURLs()
	if err != nil {
		return nil, err
	}
	if cfg.ackTimeout <= 0 {
		cfg.ackTimeout = ackTimeout
	}
	if cfg.ackWaitMin <= 0 || cfg.ackWaitMin > cfg.ackTimeout {
		cfg.ackWaitMin = min(minAckWait, cfg.ackTimeout)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Fleet{
		cfg: cfg, now: now, ctx: ctx, cancel: cancel,
		log:      log.With().Str("component", "fleet").Logger(),
		subject:  cfg.Subject + "." + cfg.Name,
		ready:    make(chan struct{}),
		refollow: make(chan struct{}, 1),
	}
	if cfg.Publishes() {
		ob, skipped, err := OpenOutbox(cfg.StatePath+OutboxSuffix, cfg.OutboxMax)
		if err != nil {
			cancel()
			return nil, err
		}
		if skipped > 0 {
			f.log.Warn().Int("lines", skipped).Str("file", ob.path).Msg("fleet outbox: skipped lines that are not events (a crash mid-write, or damage)")
		}
		if ob.Len() > 0 {
			f.log.Info().Int("events", ob.Len()).Str("file", ob.path).Msg("fleet outbox: publishing the events an earlier run left")
		}
		f.outbox = ob
		f.stats.outbox.Store(int64(ob.Len()))
		f.in = make(chan pending, handOff)
		f.send = make(chan []*outEntry)
		f.results = make(chan []bool, 1)
		f.kick = make(chan struct{}, 1)
	}
	if cfg.Follows() {
		f.cursor.load(cfg.StatePath+CursorSuffix, f.log)
		f.cursor.kick = make(chan struct{}, 1)
		f.items = make(chan Item, 1024)
	}
	opts, err := f.options()
	if err != nil {
		f.closeOutbox()
		cancel()
		return nil, err
	}
	f.nc, err = nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		f.closeOutbox()
		cancel()
		return nil, fmt.Errorf("-nats-url: %w", err)
	}
	f.stats.connected.Store(f.nc.IsConnected())
	f.js, err = jetstream.New(f.nc,
		jetstream.WithPublishAsyncMaxPending(2*sendBatch),
		jetstream.WithPublishAsyncTimeout(cfg.ackTimeout))
	if err != nil {
		f.nc.Close()
		f.closeOutbox()
		cancel()
		return nil, err
	}
	if f.outbox != nil {
		f.wg.Add(2)
		go f.runOutbox()
		go f.runSender()
	}
	if f.items != nil {
		f.wg.Add(2)
		go f.runFollower()
		go f.runCursor()
	}
	f.log.Info().Strs("servers", redactAll(urls)).Str("stream", cfg.Stream).Str("subject", f.subject).
		Str("mode", cfg.Mode).Bool("tls", cfg.TLS()).Bool("connected", f.nc.IsConnected()).
		Msg("fleet: joining")
	if !f.nc.IsConnected() {
		f.log.Warn().Strs("servers", redactAll(urls)).
			Msg("fleet: no NATS server answers yet; trying in the background (logins grant here meanwhile, and what they publish waits in the outbox)")
	}
	return f, nil
}

func redactAll(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = redact(u)
	}
	return out
}

// options are the NATS connection's: reconnect forever, never buffer a
// publish while disconnected (the outbox is the buffer), notice a dead
// server within seconds.
func (f *Fleet) options() ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name("relaygate " + f.cfg.Name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.ReconnectBufSize(-1),
		nats.Timeout(2 * time.Second),
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.ConnectHandler(func(nc *nats.Conn) {
			f.stats.connected.Store(true)
			f.log.Info().Str("server", redact(nc.ConnectedUrl())).Msg("fleet: connected")
			f.wake()
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			f.stats.connected.Store(false)
			if f.ctx.Err() == nil {
				f.log.Warn().Err(err).Msg("fleet: disconnected; logins keep granting here, and what they publish waits in the outbox")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			f.stats.connected.Store(true)
			f.stats.reconnects.Add(1)
			f.log.Info().Str("server", redact(nc.ConnectedUrl())).Msg("fleet: reconnected")
			f.wake()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			f.warn(err, "fleet: the NATS server reported an error")
		}),
	}
	return append(opts, f.cfg.authOptions()...), nil
}

// authOptions are the credentials and TLS options of c.
func (c *Config) authOptions() []nats.Option {
	var opts []nats.Option
	if c.Creds != "" {
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	if c.CA != "" {
		opts = append(opts, nats.RootCAs(c.CA))
	}
	if c.Cert != "" {
		opts = append(opts, nats.ClientCert(c.Cert, c.Key))
	}
	if c.TLS() {
		opts = append(opts, nats.Secure())
	}
	return opts
}

// warn logs at most one warning every 10 s.
func (f *Fleet) warn(err error, msg string) {
	now := time.Now().UnixNano()
	last := f.warnAt.Load()
	if now-last < int64(10*time.Second) || !f.warnAt.CompareAndSwap(last, now) {
		return
	}
	f.log.Warn().Err(err).Msg(msg)
}

func (f *Fleet) wake() {
	if f.kick != nil {
		select {
		case f.kick <- struct{}{}:
		default:
		}
	}
	select {
	case f.refollow <- struct{}{}:
	default:
	}
}

// streamConfig is the stream a publishing relaygate creates when none
// exists: file storage, replicated on three servers when the fleet is a
// cluster, events kept MaxAge, duplicates dropped within 2 minutes.
func (f *Fleet) streamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        f.cfg.Stream,
		Description: "relaygate grant events (docs/FLEET.md)",
		Subjects:    []string{f.cfg.Subject + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      f.cfg.MaxAge(),
		Duplicates:  2 * time.Minute,
		MaxMsgSize:  MaxEventBytes + 1024,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// stream finds the stream, or creates it when this relaygate publishes.
func (f *Fleet) stream(ctx context.Context) (jetstream.Stream, error) {
	f.streamMu.Lock()
	defer f.streamMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := f.js.Stream(ctx, f.cfg.Stream)
	if err == nil {
		f.checkStream(st.CachedInfo())
		f.streamOK.Store(true)
		return st, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) || !f.cfg.Publishes() {
		return nil, err
	}
	replicas := 1
	if f.nc.ConnectedClusterName() != "" {
		replicas = 3
	}
	st, err = f.js.CreateStream(ctx, f.streamConfig(replicas))
	if err != nil && replicas > 1 && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		f.log.Warn().Err(err).Msg("fleet: cannot create the stream on 3 servers; creating it on one (a lost server then loses the stream: create it yourself with --replicas 3)")
		st, err = f.js.CreateStream(ctx, f.streamConfig(1))
	}
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		st, err = f.js.Stream(ctx, f.cfg.Stream) // another relaygate was first
	}
	if err != nil {
		return nil, err
	}
	f.log.Info().Str("stream", f.cfg.Stream).Int("replicas", st.CachedInfo().Config.Replicas).
		Str("max_age", f.cfg.MaxAge().String()).Msg("fleet: created the stream")
	f.streamOK.Store(true)
	return st, nil
}

// checkStream warns once about a stream that keeps events too short.
func (f *Fleet) checkStream(info *jetstream.StreamInfo) {
	if f.streamOK.Load() || info == nil {
		return
	}
	if a := info.Config.MaxAge; a > 0 && a < f.cfg.Window() {
		f.log.Warn().Str("stream", f.cfg.Stream).Str("max_age", a.String()).Str("needed", f.cfg.Window().String()).
			Msg("fleet: the stream forgets events sooner than -grace (plus a minute): a relaygate that starts misses older active grants")
	}
	if !sizeBounded(info.Config.MaxMsgSize) {
		f.log.Warn().Str("stream", f.cfg.Stream).Int32("max_msg_size", info.Config.MaxMsgSize).
			Msg("fleet: the stream takes messages far larger than an event: a hostile publisher can make every follower read them (set its max message size to 3072)")
	}
}

// sizeBounded reports whether a stream's message size limit keeps out
// what is far larger than an event.
func sizeBounded(n int32) bool { return n > 0 && n <= 4*MaxEventBytes }

// Close stops publishing and following. Events handed to Publish but not
// acknowledged stay in the outbox, for the next run; the cursor is saved
// as far as Durable said.
func (f *Fleet) Close() {
	if f == nil {
		return
	}
	f.cancel()
	f.wg.Wait()
	f.nc.Close()
	f.stats.connected.Store(false)
	if f.items != nil {
		f.saveCursor()
	}
}

func (f *Fleet) closeOutbox() {
	if f.outbox != nil {
		f.outbox.Close()
	}
}

// Stats returns the counters.
func (f *Fleet) Stats() *Stats { return &f.stats }
