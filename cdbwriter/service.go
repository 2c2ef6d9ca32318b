package cdbwriter

import (
	"errors"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/internal/grants"
)

// Config tells a Service where to publish and how often.
type Config struct {
	MapPath   string
	StatePath string // empty: grants do not survive a restart
	// Flush is the least time between two map publishes. Each publish makes
	// every idle smtpd restart, so bursts of logins are coalesced.
	Flush  time.Duration
	Logger zerolog.Logger
	Stats  *Stats
	// OnPublish, if set, is told of every map write attempt: when, how long
	// it took, and its error (nil when the map was replaced). It runs on
	// the goroutine that owns the table, so it must not block.
	OnPublish func(now time.Time, took time.Duration, err error)
	// OnDurable, if set, is called after each group of changes reached
	// the disk, with the greatest Event.Seq now durable (see Durable). It
	// runs on the goroutine that owns the table, so it must not block.
	OnDurable func(seq uint64)
	// OnSet, if set, is handed the granted addresses (unmapped, in no
	// particular order; the slice is the callee's) at start, at shutdown,
	// and whenever the set changed, at most once per Flush, whether or not
	// the map could be written: relaygate's outputs for other MTAs. It runs
	// on the goroutine that owns the table, so it must not block.
	OnSet func(addrs []netip.Addr)
	// CatchUp, if set, is called by Start once the state is restored and
	// before the first publish, with a function that applies an event as
	// Run would: what must be in the very first map (a fleet's active
	// grants, replayed from its stream). It runs on Start's goroutine.
	CatchUp func(apply func(grants.Event))
	// Grantable says whether an address in an existing map may be carried
	// over at start (see Start); relaygate passes the parsers' own rule.
	// Nil refuses only what can never be a client.
	Grantable func(netip.Addr) bool

	// syncInterval bounds how long a change to the table (a login, a
	// logout, a repeat login that only moved an expiry, a removal) stays
	// in memory only: within it the change is appended to the state file
	// and synced, together with every other change made meanwhile, so a
	// crash loses at most this much. Default 100ms.
	syncInterval time.Duration
	// stateEvery bounds how often the state file is rewritten whole while
	// appending to it is not possible (after a failed sync). Default
	// max(Flush, 10s).
	stateEvery time.Duration
	// maxBackoff caps the wait between retries of a failed write. Default
	// 30s.
	maxBackoff time.Duration
}

// Service owns a grants.Table and keeps the map and state file in step with it:
// it expires grants on time with no traffic at all, publishes only when the
// set of addresses changed, at most once per Flush, and retries failed
// writes with back-off. Its steps take the time from the caller, so tests
// drive it with exact times; Run drives it with a Clock.
type Service struct {
	cfg   Config
	table *grants.Table
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
	open          openFunc                                 // os.OpenFile; tests make files unreadable to root with it
	writeMapFile  func(path string, t *grants.Table) error // writeTableMap; tests make it fail
	mapFailures   int                                      // failed map writes since the last good one
	handed        handOffState                             // what OnSet was last given

	// unsavedSince is when the oldest change not yet in the state file
	// was made; zero when none is waiting for a sync.
	unsavedSince time.Time
	lastNow      time.Time // the latest time a caller gave
	catchingUp   bool      // Config.CatchUp is running: logins logged at debug level
	applied      uint64    // the greatest Event.Seq applied to the table
	durable      atomic.Uint64
}

// NewService returns a Service for table. Call Start before anything else.
func NewService(cfg Config, table *grants.Table) *Service {
	if cfg.Flush <= 0 {
		cfg.Flush = time.Second
	}
	if cfg.syncInterval <= 0 {
		cfg.syncInterval = 100 * time.Millisecond
	}
	if cfg.Grantable == nil {
		cfg.Grantable = defaultGrantable
	}
	if cfg.stateEvery <= 0 {
		cfg.stateEvery = max(cfg.Flush, 10*time.Second)
	}
	if cfg.maxBackoff <= 0 {
		cfg.maxBackoff = 30 * time.Second
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
	if n, err := removeStaleTemps(s.cfg.MapPath); err != nil {
		return err
	} else if n > 0 {
		s.log.Info().Int("files", n).Msg("removed temporary files left by an earlier run")
	}
	if s.cfg.StatePath != "" {
		_, _ = removeStaleTemps(s.cfg.StatePath)
	}
	if s.cfg.CatchUp != nil {
		_, before := s.table.Versions()
		granted, extended := s.stats.Granted.Load(), s.stats.Extended.Load()
		// One line for the catch-up, not one per replayed login: a fleet
		// replays tens of thousands, and the lines would cost a new
		// relaygate more time than the grants themselves.
		s.catchingUp = true
		s.cfg.CatchUp(s.apply)
		s.catchingUp = false
		s.log.Info().Int64("granted", s.stats.Granted.Load()-granted).Int64("extended", s.stats.Extended.Load()-extended).
			Int("active", s.table.Len()).Msg("catch-up applied (each login at debug level)")
		if _, after := s.table.Versions(); after != before {
			// What the catch-up granted is on disk before Postfix sees it.
			_ = s.writeState(now)
		}
	}
	// A map that cannot be written at startup is a configuration error to
	// fix before anything else. A state file that cannot be written is not
	// (the write is retried). The map may go first here: everything in it
	// was just read from the state file or the map.
	if err := s.publishMap(now); err != nil {
		return err
	}
	_ = s.writeState(now)
	s.handOff(now, true)
	s.stats.Active.Store(int64(s.table.Len()))
	return nil
}

// Apply records one event, as Run does, for the caller that owns the
// service before Run: events received while it started.
func (s *Service) Apply(ev grants.Event) { s.apply(ev) }

func (s *Service) apply(ev grants.Event) {
	if ev.Seq > s.applied {
		s.applied = ev.Seq
	}
	switch ev.Kind {
	case grants.EventLogout:
		s.logout(ev.Grant.Daemon, ev.Grant.User, ev.Session, ev.At)
	case grants.EventExclude:
		s.setExclude(ev.Exclude)
	case grants.EventLogin:
		s.login(ev.Grant, ev.Session, ev.At)
	case grants.EventMark:
		// Nothing to change; durable at once if nothing else waits for a
		// sync, else with the sync that is already due.
		s.noteChange(s.lastNow)
	}
}

// setExclude replaces the excluded networks; grants inside them are
// removed and published away at the next write.
func (s *Service) setExclude(exclude []netip.Prefix) {
	for _, g := range s.table.SetExclude(exclude) {
		s.log.Info().Str("addr", Key(g.Addr)).Str("user", g.User).Str("daemon", g.Daemon).
			Msg("grant removed: address now excluded")
	}
	s.stats.Active.Store(int64(s.table.Len()))
	s.noteChange(s.lastNow)
}

// logout records the end of a session at now.
func (s *Service) logout(daemon, user, session string, now time.Time) {
	if a, ok := s.table.Logout(daemon, session, now); ok {
		s.log.Debug().Str("addr", Key(a)).Str("user", user).Str("daemon", daemon).Msg("session closed")
	}
	s.noteChange(now)
}

// login records a successful login at now; a non-empty session keeps the
// grant open until its logout.
func (s *Service) login(g grants.Grant, session string, now time.Time) grants.Outcome {
	before := s.table.Evictions()
	out := s.table.Login(g, session, now)
	if n := s.table.Evictions() - before; n > 0 {
		s.stats.Evicted.Add(int64(n))
		if now.Sub(s.lastEvictWarn) >= 10*time.Second {
			s.lastEvictWarn = now
			s.log.Warn().Int("max_entries", s.table.MaxEntries()).Int64("evicted_total", s.stats.Evicted.Load()).
				Msg("grant table full: evicted the least recently logged-in grants (raise -max-entries, or find the flood)")
		}
	}
	ev := s.log.Info()
	if s.catchingUp {
		ev = s.log.Debug()
	}
	switch out {
	case grants.Added:
		s.stats.Granted.Add(1)
		s.stats.Active.Store(int64(s.table.Len()))
	case grants.Extended:
		s.stats.Extended.Add(1)
	case grants.Excluded:
		s.stats.Excluded.Add(1)
		ev = s.log.Debug()
	}
	ev.Str("addr", Key(g.Addr)).Str("user", g.User).Str("daemon", g.Daemon).Str("host", g.Host).
		Str("outcome", out.String()).Msg(loginMessage(out))
	s.noteChange(now)
	return out
}

func loginMessage(o grants.Outcome) string {
	switch o {
	case grants.Added:
		return "granted"
	case grants.Extended:
		return "grant extended"
	}
	return "not granted: address excluded"
}

// tick expires grants, writes what is due, and returns when it next needs
// to run (zero if only a new login can make work).
func (s *Service) tick(now time.Time) time.Time {
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
	s.handOff(now, false)
	return s.due()
}

// mapDue: the set of addresses changed, -flush has passed since the last
// publish, and no failed publish is waiting for its retry time.
func (s *Service) mapDue(now time.Time) bool {
	members, _ := s.table.Versions()
	return members != s.publishedMembers && !now.Before(s.lastPublish.Add(s.cfg.Flush)) && !now.Before(s.mapRetry.at)
}

// due returns when tick next has work: the earliest expiry, publish or
// state write due (zero if none).
func (s *Service) due() time.Time {
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
	if t := s.handOffDue(); !t.IsZero() {
		earliest(t)
	}
	return next
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// shutdown writes the map and state one last time, whatever Flush and the
// retry back-offs say.
func (s *Service) shutdown(now time.Time) error {
	s.tick(now)
	var errs []error
	if _, changes := s.table.Versions(); changes != s.savedChanges && s.cfg.StatePath != "" {
		errs = append(errs, s.writeState(now))
	}
	if members, _ := s.table.Versions(); members != s.publishedMembers {
		errs = append(errs, s.writeMap(now))
	}
	s.handOff(now, true)
	// No whole-file rewrite at exit beyond tick's usual threshold: the
	// file as appended is complete and every version since appending
	// began reads it, while a rewrite of a million grants (100 MB) would
	// stand between SIGTERM and the exit a successor waits for.
	return errors.Join(errs...)
}
