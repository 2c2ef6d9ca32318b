package cdbwriter

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Config tells a Service where to publish and how often.
type Config struct {
	MapPath   string
	StatePath string // empty: grants do not survive a restart
	// Flush is the least time between two map publishes. Each publish makes
	// every idle smtpd restart, so bursts of logins are coalesced.
	Flush time.Duration
	// SyncInterval bounds how long a change to the table (a login, a
	// logout, a repeat login that only moved an expiry, a removal) stays
	// in memory only: within it the change is appended to the state file
	// and synced, together with every other change made meanwhile, so a
	// crash loses at most this much. Default 100ms.
	SyncInterval time.Duration
	// StateEvery bounds how often the state file is rewritten whole while
	// appending to it is not possible (after a failed sync).
	StateEvery time.Duration
	// MaxBackoff caps the wait between retries of a failed write.
	MaxBackoff time.Duration
	Logger     zerolog.Logger
	Stats      *Stats
	// OnPublish, if set, is told of every map write attempt: when, how long
	// it took, and its error (nil when the map was replaced). It runs on
	// the goroutine that owns the table, so it must not block.
	OnPublish func(now time.Time, took time.Duration, err error)
	// OnDurable, if set, is called after each group of changes reached
	// the disk, with the greatest Event.Seq now durable (see Durable). It
	// runs on the goroutine that owns the table, so it must not block.
	OnDurable func(seq uint64)
	// Grantable says whether an address in an existing map may be carried
	// over at start (see Start); relaygate passes the parsers' own rule.
	// Nil refuses only what can never be a client.
	Grantable func(netip.Addr) bool
}

// Stats counts what the Service did. All fields are safe for concurrent use.
type Stats struct {
	Granted, Extended, Excluded, Expired atomic.Int64
	Evicted                              atomic.Int64 // grants dropped because -max-entries was reached
	Active                               atomic.Int64
	Publishes, PublishErrors             atomic.Int64
	StateSaves, StateErrors              atomic.Int64 // appends and whole writes of the state file
	LastPublishUnix                      atomic.Int64
	LastPublishNanos                     atomic.Int64 // how long the last successful publish took
	CarriedOver                          atomic.Int64 // map addresses the state did not account for, granted for one grace period at start
	CarryOverSkipped                     atomic.Int64 // map keys not carried over: not an address, ungrantable, excluded, or over -max-entries
}

// EventKind says what an Event asks of the Service.
type EventKind uint8

const (
	// The zero kind names nothing: a zero Event, or one whose kind was
	// forgotten, must never grant, so it is ignored.
	_ EventKind = iota
	// EventLogin grants Grant.Addr; a Session keeps it open until its logout.
	EventLogin
	// EventLogout closes Grant.Daemon's Session.
	EventLogout
	// EventExclude replaces the excluded networks (a SIGHUP reload).
	EventExclude
)

// Event is one instruction for the Service, received at At (relaygate's
// clock, not the syslog header's).
type Event struct {
	Kind    EventKind
	Grant   Grant  // for a logout only Daemon and User are used
	Session string // the daemon's session id, if it logs one
	At      time.Time
	Exclude []netip.Prefix // EventExclude only
	// Seq, if the caller numbers its events (increasing), lets it learn
	// when an event's effect would survive a crash: see Service.Durable.
	Seq uint64
}

// Service owns a Table and keeps the map and state file in step with it:
// it expires grants on time with no traffic at all, publishes only when the
// set of addresses changed, at most once per Flush, and retries failed
// writes with back-off. Its methods take the time from the caller, so tests
// drive it with an exact clock; Run is the real-time driver.
type Service struct {
	cfg   Config
	table *Table
	log   zerolog.Logger
	stats *Stats

	publishedMembers uint64
	savedChanges     uint64
	// stateLines counts the grant lines in the state file, appended ones
	// included; stateAppend says appending is safe: this process wrote
	// the whole file, and no append since failed halfway.
	stateLines    int
	stateAppend   bool
	stateSlack    int // defaultStateSlack; tests lower it
	lastPublish   time.Time
	lastSave      time.Time
	mapRetry      retry
	stateRetry    retry
	lastEvictWarn time.Time
	open          openFunc                          // os.OpenFile; tests make files unreadable to root with it
	writeMapFile  func(path string, t *Table) error // writeTableMap; tests make it fail
	mapFailures   int                               // failed map writes since the last good one

	// unsavedSince is when the oldest change not yet in the state file
	// was made; zero when none is waiting for a sync.
	unsavedSince time.Time
	lastNow      time.Time // the latest time a caller gave
	applied      uint64    // the greatest Event.Seq applied to the table
	durable      atomic.Uint64
}

// NewService returns a Service for table. Call Start before anything else.
func NewService(cfg Config, table *Table) *Service {
	if cfg.Flush <= 0 {
		cfg.Flush = time.Second
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = 100 * time.Millisecond
	}
	if cfg.Grantable == nil {
		cfg.Grantable = defaultGrantable
	}
	if cfg.StateEvery <= 0 {
		cfg.StateEvery = max(cfg.Flush, 10*time.Second)
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Stats == nil {
		cfg.Stats = new(Stats)
	}
	return &Service{
		cfg:          cfg,
		table:        table,
		log:          cfg.Logger.With().Str("component", "cdbwriter").Logger(),
		stats:        cfg.Stats,
		stateSlack:   defaultStateSlack,
		open:         os.OpenFile,
		writeMapFile: writeTableMap,
	}
}

// Table returns the service's table (for tests and read-only callers on the
// owning goroutine).
func (s *Service) Table() *Table { return s.table }

// Start restores the state file, carries over what the existing map has
// and the state does not account for, removes temporary files an earlier
// crash left behind, and publishes the map at once (empty if nothing is
// granted), so that Postfix never finds the table missing.
//
// A map or state file that exists but cannot be read, or is not a regular
// file, is an error before anything is written: the map stays as it is.
// A map that cannot be written is an error too. A damaged state file is
// not: refusing to start would lose every grant, so what it lost is
// carried over from the map instead.
func (s *Service) Start(now time.Time) error {
	mapFile, err := openExisting(s.open, "map", s.cfg.MapPath,
		"make it readable by the user relaygate runs as, or move it away (its grants are then lost)")
	if err != nil {
		return err
	}
	if mapFile != nil {
		defer mapFile.Close()
	}
	if s.cfg.StatePath != "" {
		if err := s.restore(mapFile, now); err != nil {
			return err
		}
	}
	if n, err := RemoveStaleTemps(s.cfg.MapPath); err != nil {
		return err
	} else if n > 0 {
		s.log.Info().Int("files", n).Msg("removed temporary files left by an earlier run")
	}
	if s.cfg.StatePath != "" {
		_, _ = RemoveStaleTemps(s.cfg.StatePath)
	}
	// A map that cannot be written at startup is a configuration error to
	// fix before anything else. A state file that cannot be written is not
	// (the write is retried). The map may go first here: everything in it
	// was just read from the state file or the map.
	if err := s.publishMap(now); err != nil {
		return err
	}
	_ = s.writeState(now)
	s.stats.Active.Store(int64(s.table.Len()))
	return nil
}

// SetExclude replaces the excluded networks; grants inside them are removed
// and published away at the next write.
func (s *Service) SetExclude(exclude []netip.Prefix) {
	for _, g := range s.table.SetExclude(exclude) {
		s.log.Info().Str("addr", Key(g.Addr)).Str("user", g.User).Str("daemon", g.Daemon).
			Msg("grant removed: address now excluded")
	}
	s.stats.Active.Store(int64(s.table.Len()))
	s.noteChange(s.lastNow)
}

// Logout records the end of a session at now.
func (s *Service) Logout(daemon, user, session string, now time.Time) {
	if a, ok := s.table.Logout(daemon, session, now); ok {
		s.log.Debug().Str("addr", Key(a)).Str("user", user).Str("daemon", daemon).Msg("session closed")
	}
	s.noteChange(now)
}

// Login records a successful login at now; a non-empty session keeps the
// grant open until its logout.
func (s *Service) Login(g Grant, session string, now time.Time) Outcome {
	before := s.table.Evictions()
	out := s.table.Login(g, session, now)
	if n := s.table.Evictions() - before; n > 0 {
		s.stats.Evicted.Add(int64(n))
		if now.Sub(s.lastEvictWarn) >= 10*time.Second {
			s.lastEvictWarn = now
			s.log.Warn().Int("max_entries", s.table.maxEntries).Int64("evicted_total", s.stats.Evicted.Load()).
				Msg("grant table full: evicted the least recently logged-in grants (raise -max-entries, or find the flood)")
		}
	}
	ev := s.log.Info()
	switch out {
	case Added:
		s.stats.Granted.Add(1)
		s.stats.Active.Store(int64(s.table.Len()))
	case Extended:
		s.stats.Extended.Add(1)
	case Excluded:
		s.stats.Excluded.Add(1)
		ev = s.log.Debug()
	}
	ev.Str("addr", Key(g.Addr)).Str("user", g.User).Str("daemon", g.Daemon).Str("host", g.Host).
		Str("outcome", out.String()).Msg(loginMessage(out))
	s.noteChange(now)
	return out
}

func loginMessage(o Outcome) string {
	switch o {
	case Added:
		return "granted"
	case Extended:
		return "grant extended"
	}
	return "not granted: address excluded"
}

// Tick expires grants, writes what is due, and returns when it next needs
// to run (zero if only a new login can make work).
func (s *Service) Tick(now time.Time) time.Time {
	for _, g := range s.table.Expire(now) {
		s.stats.Expired.Add(1)
		s.log.Info().Str("addr", Key(g.Addr)).Str("user", g.User).Str("daemon", g.Daemon).
			Str("host", g.Host).Msg("expired")
	}
	s.stats.Active.Store(int64(s.table.Len()))
	s.noteChange(now)
	if s.mapDue(now) {
		// The state first, so a grant is on disk before Postfix can see it
		// and a kill -9 at any moment never loses a published grant. A
		// failing state file delays nothing: the map goes out regardless.
		if _, changes := s.table.Versions(); changes != s.savedChanges {
			s.writeState(now)
		}
		s.writeMap(now)
		s.compactState(2*s.table.Len() + s.stateSlack)
	} else if s.stateDue(now) {
		s.writeState(now)
		s.compactState(2*s.table.Len() + s.stateSlack)
	}
	return s.next()
}

// mapDue: the set of addresses changed, -flush has passed since the last
// publish, and no failed publish is waiting for its retry time.
func (s *Service) mapDue(now time.Time) bool {
	members, _ := s.table.Versions()
	return members != s.publishedMembers && !now.Before(s.lastPublish.Add(s.cfg.Flush)) && !now.Before(s.mapRetry.at)
}

// Due returns when the next write is due, for a driver deciding whether a
// login needs an earlier wake-up than the one it has scheduled.
func (s *Service) Due() time.Time { return s.next() }

func (s *Service) next() time.Time {
	var next time.Time
	earliest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if t, ok := s.table.NextExpiry(); ok {
		earliest(t)
	}
	members, changes := s.table.Versions()
	if members != s.publishedMembers {
		earliest(latest(s.lastPublish.Add(s.cfg.Flush), s.mapRetry.at))
	}
	if changes != s.savedChanges && s.cfg.StatePath != "" {
		earliest(latest(s.stateDueAt(), s.stateRetry.at))
	}
	return next
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Shutdown writes the map and state one last time, whatever Flush and the
// retry back-offs say.
func (s *Service) Shutdown(now time.Time) error {
	s.Tick(now)
	var errs []error
	if _, changes := s.table.Versions(); changes != s.savedChanges && s.cfg.StatePath != "" {
		errs = append(errs, s.writeState(now))
	}
	if members, _ := s.table.Versions(); members != s.publishedMembers {
		errs = append(errs, s.writeMap(now))
	}
	// No whole-file rewrite at exit beyond Tick's usual threshold: the
	// file as appended is complete and every version since appending
	// began reads it, while a rewrite of a million grants (100 MB) would
	// stand between SIGTERM and the exit a successor waits for.
	return errors.Join(errs...)
}

// retry is one writer's back-off after failures.
type retry struct {
	at      time.Time
	backoff time.Duration
}

func (r *retry) failed(now time.Time, first, maxBackoff time.Duration) {
	if r.backoff == 0 {
		r.backoff = first
	} else {
		r.backoff = min(2*r.backoff, maxBackoff)
	}
	r.at = now.Add(r.backoff)
}

func (r *retry) succeeded() { *r = retry{} }

// writeMap publishes the table as the map; a failure keeps the previous map
// and schedules a retry.
func (s *Service) writeMap(now time.Time) error {
	err := s.publishMap(now)
	if err != nil {
		s.log.Error().Err(err).Dur("retry_in", s.mapRetry.backoff).Int("grants", s.table.Len()).
			Int("failures", s.mapFailures).Msg(s.mapFailedMessage())
	}
	return err
}

// mapFailedMessage says what a failed map write means, given the state
// file's own health: the state is written before the map, so its retry
// timer says whether the changes Postfix does not see are on disk.
func (s *Service) mapFailedMessage() string {
	switch {
	case s.cfg.StatePath == "":
		return "map write failed; Postfix keeps the previous map, without the grant changes since, which are in memory only (no state file); retrying"
	case s.stateRetry.backoff > 0:
		return "map write failed, and the state write is failing too; Postfix keeps the previous map, without the grant changes since, which are in memory only and a restart would lose; retrying both"
	}
	return "map write failed; Postfix keeps the previous map, without the grant changes since, which the state file has, so a restart keeps them; retrying"
}

func (s *Service) publishMap(now time.Time) error {
	members, _ := s.table.Versions()
	start := time.Now()
	err := s.writeMapFile(s.cfg.MapPath, s.table)
	took := time.Since(start)
	if s.cfg.OnPublish != nil {
		s.cfg.OnPublish(now, took, err)
	}
	if err != nil {
		s.stats.PublishErrors.Add(1)
		s.mapFailures++
		s.mapRetry.failed(now, max(s.cfg.Flush, 100*time.Millisecond), s.cfg.MaxBackoff)
		return err
	}
	if s.mapFailures > 0 {
		s.log.Info().Int("failures", s.mapFailures).Int("entries", s.table.Len()).
			Msg("map write succeeded again; Postfix sees every grant")
		s.mapFailures = 0
	}
	s.mapRetry.succeeded()
	s.stats.Publishes.Add(1)
	s.stats.LastPublishUnix.Store(now.Unix())
	s.stats.LastPublishNanos.Store(int64(took))
	s.publishedMembers = members
	s.lastPublish = now
	s.log.Debug().Int("entries", s.table.Len()).Dur("took", took).Msg("published map")
	return nil
}

// maxBatch is the most events Run applies before it looks at its timer
// again.
const maxBatch = 1024

// applyQueued applies ev and the events already queued behind it, up to
// maxBatch, and reports whether events is still open. Events that queued
// up while a write ran go in together, so the one sync their oldest has
// made due covers them all, instead of a sync for every few events as
// select alternates between a ready timer and a ready channel.
func (s *Service) applyQueued(ev Event, events <-chan Event) bool {
	s.apply(ev)
	for range maxBatch - 1 {
		select {
		case ev, ok := <-events:
			if !ok {
				return false
			}
			s.apply(ev)
		default:
			return true
		}
	}
	return true
}

// Apply records one event, as Run does, for the caller that owns the
// service before Run: events received while it started.
func (s *Service) Apply(ev Event) { s.apply(ev) }

func (s *Service) apply(ev Event) {
	if ev.Seq > s.applied {
		s.applied = ev.Seq
	}
	switch ev.Kind {
	case EventLogout:
		s.Logout(ev.Grant.Daemon, ev.Grant.User, ev.Session, ev.At)
	case EventExclude:
		s.SetExclude(ev.Exclude)
	case EventLogin:
		s.Login(ev.Grant, ev.Session, ev.At)
	}
}

// Run feeds events to the service and keeps its timers until events is
// closed, then shuts it down with a final write. Closing the channel rather
// than cancelling a context lets the caller drain every message already
// received before the last publish. Each function received from reads is
// called with the table on Run's goroutine, between events: the table is
// not safe for concurrent use, and this is how another goroutine (an HTTP
// handler) may look at it. reads may be nil. now is the clock (time.Now in
// production).
func (s *Service) Run(events <-chan Event, reads <-chan func(*Table), now func() time.Time) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	var wake time.Time
	arm := func(t time.Time) {
		if t.IsZero() || (!wake.IsZero() && !t.Before(wake)) {
			return
		}
		wake = t
		timer.Reset(max(t.Sub(now()), 0))
	}
	arm(s.Tick(now()))
	for {
		select {
		case ev, ok := <-events:
			if ok {
				ok = s.applyQueued(ev, events)
			}
			if !ok {
				if err := s.Shutdown(now()); err != nil {
					return fmt.Errorf("final write: %w", err)
				}
				return nil
			}
			arm(s.Due())
		case <-timer.C:
			wake = time.Time{}
			arm(s.Tick(now()))
		case read := <-reads:
			read(s.table)
		}
	}
}
