package cdbwriter

import (
	"errors"
	"fmt"
	"net/netip"
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
	// StateEvery bounds how often the state file is rewritten when only
	// expiry times moved (repeat logins). Membership changes always save it.
	StateEvery time.Duration
	// MaxBackoff caps the wait between retries of a failed write.
	MaxBackoff time.Duration
	Logger     zerolog.Logger
	Stats      *Stats
	// OnPublish, if set, is told of every map write attempt: when, how long
	// it took, and its error (nil when the map was replaced). It runs on
	// the goroutine that owns the table, so it must not block.
	OnPublish func(now time.Time, took time.Duration, err error)
}

// Stats counts what the Service did. All fields are safe for concurrent use.
type Stats struct {
	Granted, Extended, Excluded, Expired atomic.Int64
	Evicted                              atomic.Int64 // grants dropped because -max-entries was reached
	Active                               atomic.Int64
	Publishes, PublishErrors             atomic.Int64
	StateSaves, StateErrors              atomic.Int64
	LastPublishUnix                      atomic.Int64
	LastPublishNanos                     atomic.Int64 // how long the last successful publish took
}

// EventKind says what an Event asks of the Service.
type EventKind uint8

const (
	// EventLogin grants Grant.Addr; a Session keeps it open until its logout.
	EventLogin EventKind = iota
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
}

// NewService returns a Service for table. Call Start before anything else.
func NewService(cfg Config, table *Table) *Service {
	if cfg.Flush <= 0 {
		cfg.Flush = time.Second
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
		cfg:        cfg,
		table:      table,
		log:        cfg.Logger.With().Str("component", "cdbwriter").Logger(),
		stats:      cfg.Stats,
		stateSlack: defaultStateSlack,
	}
}

// Table returns the service's table (for tests and read-only callers on the
// owning goroutine).
func (s *Service) Table() *Table { return s.table }

// Start restores the state file, removes temporary files an earlier crash
// left behind, and publishes the map at once (empty if nothing is granted),
// so that Postfix never finds the table missing. A failure here is returned:
// a map that cannot be written at startup is a configuration error.
func (s *Service) Start(now time.Time) error {
	if n, err := RemoveStaleTemps(s.cfg.MapPath); err != nil {
		return err
	} else if n > 0 {
		s.log.Info().Int("files", n).Msg("removed temporary files left by an earlier run")
	}
	if s.cfg.StatePath != "" {
		_, _ = RemoveStaleTemps(s.cfg.StatePath)
		grants, err := LoadState(s.cfg.StatePath)
		if err != nil {
			// A damaged state file loses at most the lines that are damaged;
			// refusing to start would lose every grant instead.
			s.log.Warn().Err(err).Int("readable", len(grants)).Msg("state file damaged; restoring what could be read")
		}
		restored := s.table.Restore(grants, now)
		if len(grants) > 0 || restored > 0 {
			s.log.Info().Int("restored", restored).Int("expired_or_excluded", len(grants)-restored).
				Str("state", s.cfg.StatePath).Msg("restored grants")
		}
	}
	// A map that cannot be written at startup is a configuration error to
	// fix before anything else. A state file that cannot be written is not
	// (grants still reach Postfix, and the write is retried). The map may go
	// first here: everything in it was just read from the state file.
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
}

// Logout records the end of a session at now.
func (s *Service) Logout(daemon, user, session string, now time.Time) {
	if a, ok := s.table.Logout(daemon, session, now); ok {
		s.log.Debug().Str("addr", Key(a)).Str("user", user).Str("daemon", daemon).Msg("session closed")
	}
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
	if s.mapDue(now) {
		// The state first, so a grant is on disk before Postfix can see it
		// and a kill -9 at any moment never loses a published grant. A
		// failing state file delays nothing: the map goes out regardless.
		s.writeState(now)
		s.writeMap(now)
		s.compactState(2*s.table.Len() + s.stateSlack)
	} else if s.stateDue(now) && !now.Before(s.lastSave.Add(s.cfg.StateEvery)) {
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

func (s *Service) stateDue(now time.Time) bool {
	_, changes := s.table.Versions()
	return s.cfg.StatePath != "" && changes != s.savedChanges && !now.Before(s.stateRetry.at)
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
		earliest(latest(s.lastSave.Add(s.cfg.StateEvery), s.stateRetry.at))
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
	// A whole file at exit: any relaygate version reads it as it reads
	// files from before appending, and the next start reads no history.
	s.compactState(s.table.Len())
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
			Msg("map write failed; the previous map stays in place and grants continue in memory")
	}
	return err
}

func (s *Service) publishMap(now time.Time) error {
	members, _ := s.table.Versions()
	start := time.Now()
	err := writeTableMap(s.cfg.MapPath, s.table)
	took := time.Since(start)
	if s.cfg.OnPublish != nil {
		s.cfg.OnPublish(now, took, err)
	}
	if err != nil {
		s.stats.PublishErrors.Add(1)
		s.mapRetry.failed(now, max(s.cfg.Flush, 100*time.Millisecond), s.cfg.MaxBackoff)
		return err
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

// writeState saves the table to the state file; a failure schedules a retry
// of its own, so it never holds back the map. It appends the changes since
// the last save when it can, and writes the whole file otherwise.
func (s *Service) writeState(now time.Time) error {
	_, changes := s.table.Versions()
	if s.cfg.StatePath == "" {
		s.savedChanges = changes
		return nil
	}
	var err error
	if s.stateAppend && s.table.unsaved() >= 0 {
		var n int
		if n, err = appendState(s.cfg.StatePath, s.table); err == nil {
			s.stateLines += n
		} else {
			s.stateAppend = false // it may have left a partial line
		}
	} else if err = saveTable(s.cfg.StatePath, s.table); err == nil {
		s.stateLines, s.stateAppend = s.table.Len(), true
	}
	if err != nil {
		s.stats.StateErrors.Add(1)
		s.stateRetry.failed(now, max(s.cfg.Flush, 100*time.Millisecond), s.cfg.MaxBackoff)
		s.log.Error().Err(err).Dur("retry_in", s.stateRetry.backoff).
			Msg("state write failed; grants still reach Postfix but would not survive a restart until it succeeds")
		return err
	}
	s.table.saved()
	s.stateRetry.succeeded()
	s.stats.StateSaves.Add(1)
	s.savedChanges = changes
	s.lastSave = now
	return nil
}

// defaultStateSlack is how many appended lines beyond twice the table the
// state file may hold before it is rewritten whole.
const defaultStateSlack = 10000

// compactState rewrites the state file whole once it holds more than limit
// lines: during the run about three times the table, right after a publish,
// in the time -flush leaves before the next one, so the rewrite never stands
// between a login and the map; at exit, any appended line. A failure costs
// nothing: the file as appended is complete, so it is only logged, and
// tried again after the next save.
func (s *Service) compactState(limit int) {
	_, changes := s.table.Versions()
	if !s.stateAppend || changes != s.savedChanges || s.stateLines <= limit {
		return
	}
	start := time.Now()
	if err := saveTable(s.cfg.StatePath, s.table); err != nil {
		s.log.Warn().Err(err).Int("lines", s.stateLines).Msg("state file rewrite failed; the file as appended is complete, the rewrite is tried again after the next save")
		return
	}
	s.log.Debug().Int("lines", s.stateLines).Int("grants", s.table.Len()).Dur("took", time.Since(start)).Msg("state file rewritten")
	s.stateLines = s.table.Len()
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
			if !ok {
				if err := s.Shutdown(now()); err != nil {
					return fmt.Errorf("final write: %w", err)
				}
				return nil
			}
			switch ev.Kind {
			case EventLogout:
				s.Logout(ev.Grant.Daemon, ev.Grant.User, ev.Session, ev.At)
			case EventExclude:
				s.SetExclude(ev.Exclude)
			default:
				if s.Login(ev.Grant, ev.Session, ev.At) == Excluded {
					continue
				}
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
