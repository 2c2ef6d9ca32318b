// Package journal reads the systemd journal as a log source: it runs
// `journalctl --follow --output=json` (no cgo, as Elastic Beats and
// CrowdSec read the journal), filtered to the program tags the parsers
// know, and hands each entry on as a receiver.Message whose Origin is
// verified: the journal's trusted fields (_UID, _GID, _PID, _COMM, _EXE,
// _SYSTEMD_UNIT) are set by journald from the kernel's view of the writer,
// so a login line written by a login user with logger(1) can be told from
// Dovecot's own.
//
// It resumes where the last durable entry left off (cursor.go explains how
// a cursor becomes durable), restarts journalctl with back-off when it
// exits, and counts everything it skips. docs/JOURNAL.md is the operator's
// side.
package journal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Transport is the Transport of every message read from the journal.
const Transport = "journal"

// Config is what a Reader reads and where it keeps its place.
type Config struct {
	// Programs are the program tags (SYSLOG_IDENTIFIER) to read, as the
	// parsers know them (lower case). journalctl matches them exactly, so
	// each is also asked for in upper case and capitalised (see Matches).
	Programs []string
	// Directory, if set, is journalctl's --directory: read the journal
	// files there instead of the system journal.
	Directory string
	// MachineID is the machine whose entries are read (a _MACHINE_ID=
	// match); New reads this host's /etc/machine-id when it is empty.
	// journalctl 252 reads every machine's files under /run/log/journal
	// and /var/log/journal (or Directory), a container's journal kept
	// there under its own machine id too, whose root is not this host's
	// root and could write Dovecot's lines as uid 0.
	MachineID string
	// Journalctl is the program to run; "journalctl" (found in PATH) if
	// empty.
	Journalctl string
	// CursorFile keeps the cursor of the last durable entry across
	// restarts (the daemon's is <state>.journal-cursor).
	CursorFile string
	// Grace is the daemon's -grace: an entry older than this when read is
	// Stale (a login from it grants nothing), and every entry's Received
	// is its journal time, clamped to [now-Grace, now]. Without a saved
	// cursor, reading starts Grace ago.
	Grace time.Duration
	// HoldFor is how long the correlator keeps a two-line daemon's address
	// line (see Hold).
	HoldFor time.Duration
	// Now is the clock; time.Now if nil.
	Now    func() time.Time
	Logger zerolog.Logger

	// minBackoff and maxBackoff bound the wait before journalctl is
	// started again after it exited (100 ms doubling to 30 s; tests
	// shorten them). A run that delivered an entry or lasted maxBackoff
	// resets the wait.
	minBackoff, maxBackoff time.Duration
	// maxLine is the longest line read from journalctl (1 MiB). Without
	// --all journalctl prints no field of 4096 bytes or more (null), so an
	// entry's line is far shorter unless a client repeated a field (at
	// most 1024 fields an entry).
	maxLine int
	// stuckAfter is how many runs in a row may end without delivering an
	// entry before the reader looks for an entry journalctl cannot get
	// past, and skips it (3; see Run). machineIDFile is where New reads
	// the machine id (/etc/machine-id).
	stuckAfter    int
	machineIDFile string
}

// Reader follows the journal. New prepares it, Run reads until its context
// ends, Close saves the last durable cursor.
type Reader struct {
	cfg   Config
	log   zerolog.Logger
	stats Stats

	durable atomic.Uint64
	kick    chan struct{}

	mu          sync.Mutex
	programs    []string
	restart     context.CancelFunc // ends the running journalctl, for SetPrograms
	pending     []pendingCursor
	pendingHead int
	holds       []hold
	newest      time.Time // journal time of the newest entry read

	// The reading goroutine's own.
	seq      uint64
	position string // cursor of the last entry read; where a restart resumes
	// positionSkipped: position is an entry skipped as stuck, never read
	// (it is never saved): resume after it (--after-cursor), since
	// journalctl cannot print it.
	positionSkipped bool
	since           time.Time // where to start when there is no position
	skipFirst       string    // --cursor prints this entry itself first: skip it
	resuming        string    // where reading started, for the log; set by New

	// Health (under mu): runs in a row that delivered no entry, since when,
	// and the last entry skipped as stuck.
	emptyRuns    int
	emptySince   time.Time
	emptyErr     string
	stuckSkipAt  time.Time
	stuckSkipped string

	// The cursor goroutine's own.
	saved          string
	lastCursorWarn time.Time
	stop           chan struct{}
	cursorDone     chan struct{}
	closeOnce      sync.Once
}

// New checks that journalctl can be run and reads the saved cursor. It
// starts the goroutine that saves cursors; Close stops it.
func New(cfg Config) (*Reader, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.minBackoff <= 0 {
		cfg.minBackoff = 100 * time.Millisecond
	}
	if cfg.maxBackoff <= 0 {
		cfg.maxBackoff = 30 * time.Second
	}
	if cfg.maxLine <= 0 {
		cfg.maxLine = 1 << 20
	}
	if cfg.stuckAfter <= 0 {
		cfg.stuckAfter = 3
	}
	if cfg.machineIDFile == "" {
		cfg.machineIDFile = "/etc/machine-id"
	}
	if cfg.Journalctl == "" {
		cfg.Journalctl = "journalctl"
	}
	path, err := exec.LookPath(cfg.Journalctl)
	if err != nil {
		return nil, fmt.Errorf("-journal: cannot run %s (on Debian it is in the package systemd): %w", cfg.Journalctl, err)
	}
	cfg.Journalctl = path
	if cfg.Directory != "" {
		fi, err := os.Stat(cfg.Directory)
		if err != nil {
			return nil, fmt.Errorf("-journal-dir: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("-journal-dir %s: not a directory", cfg.Directory)
		}
	}
	var machineErr error
	if cfg.MachineID == "" {
		cfg.MachineID, machineErr = readMachineID(cfg.machineIDFile)
	} else if !validMachineID(cfg.MachineID) {
		return nil, fmt.Errorf("journal: machine id %q: %w", cfg.MachineID, errBadMachineID)
	}
	if cfg.CursorFile == "" {
		return nil, errors.New("journal: no cursor file")
	}
	r := &Reader{
		cfg:        cfg,
		log:        cfg.Logger.With().Str("component", "journal").Logger(),
		kick:       make(chan struct{}, 1),
		programs:   slices.Clone(cfg.Programs),
		stop:       make(chan struct{}),
		cursorDone: make(chan struct{}),
	}
	if machineErr != nil {
		// No machine id, no journald writing a journal of this host's
		// own: nothing to tell apart.
		r.log.Warn().Err(machineErr).Msg("cannot read this host's machine id: every machine's entries in the journal are read, a container's journal kept there too (docs/JOURNAL.md)")
	}
	// Temporary files a crash left between write and rename.
	if olds, _ := filepath.Glob(cfg.CursorFile + ".tmp*"); len(olds) > 0 {
		for _, o := range olds {
			_ = os.Remove(o)
		}
	}
	cursor, err := readCursorFile(cfg.CursorFile)
	if err != nil {
		r.log.Warn().Err(err).Msg("ignoring the saved journal cursor; reading the journal from one grace period ago")
	}
	r.position, r.saved = cursor, cursor
	r.since = cfg.Now().Add(-cfg.Grace)
	r.resuming = "after the saved cursor"
	if cursor == "" {
		r.resuming = "since " + r.since.Format(time.RFC3339)
	}
	go r.cursorLoop()
	return r, nil
}

// Close stops the cursor goroutine after saving the last durable cursor.
// Call it after the grant table's final sync, so that the cursor saved is
// the final one.
func (r *Reader) Close() {
	r.closeOnce.Do(func() {
		close(r.stop)
		<-r.cursorDone
		r.saveDurable()
	})
}

// CursorFile is where the reader keeps its place.
func (r *Reader) CursorFile() string { return r.cfg.CursorFile }

// Resuming describes where reading starts, for the startup log line.
func (r *Reader) Resuming() string { return r.resuming }

// SetPrograms changes the program tags read (after a reload changed the
// parsers): journalctl is restarted with the new matches, from the last
// entry read, so nothing is skipped.
func (r *Reader) SetPrograms(programs []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if slices.Equal(programs, r.programs) {
		return
	}
	r.programs = slices.Clone(programs)
	if r.restart != nil {
		r.restart()
	}
}
