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
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/internal/origin"
	"github.com/relaygate/relaygate/receiver"
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
	// maxLine is the longest line read from journalctl (1 MiB): a MESSAGE
	// of 64 KiB written as a byte array takes up to four times that.
	maxLine int
}

// Entry is one journal entry handed on.
type Entry struct {
	receiver.Message
	// Seq numbers the entries of this process from 1; the daemon gives it
	// to the entry's grant-table event (or to a mark), and hands it back
	// through Durable.
	Seq uint64
	// Stale: the entry was older than Grace when read (a resume after a
	// long stop). A login from it must not grant; a logout still closes
	// its session.
	Stale bool
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
	seq       uint64
	position  string    // cursor of the last entry read; where a restart resumes
	since     time.Time // where to start when there is no position
	skipFirst string    // --cursor prints this entry itself first: skip it
	resuming  string    // where reading started, for the log; set by New

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

// Matches returns journalctl's match arguments for the program tags:
// SYSLOG_IDENTIFIER=tag for each (journalctl ORs matches of one field).
// relaygate compares tags without regard to ASCII case, journalctl
// exactly, so each tag is asked for as given, in upper case and
// capitalised ("dovecot", "DOVECOT", "Dovecot"); another mix of case is
// not read.
func Matches(programs []string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, "SYSLOG_IDENTIFIER="+p)
		}
	}
	for _, p := range programs {
		add(p)
		add(strings.ToLower(p))
		add(strings.ToUpper(p))
		l := strings.ToLower(p)
		add(strings.ToUpper(l[:1]) + l[1:])
	}
	return out
}

// args is journalctl's command line for one run.
func (r *Reader) args(programs []string) []string {
	a := []string{"--follow", "--output=json", "--all", "--no-pager", "--output-fields=" + outputFields}
	if r.cfg.Directory != "" {
		a = append(a, "--directory="+r.cfg.Directory)
	}
	if r.position != "" {
		// --cursor, not --after-cursor: journalctl 252's --after-cursor
		// skips one entry blindly, which loses an entry when the cursor's
		// own entry was vacuumed. The entry at the cursor, when it still
		// exists, is skipped here instead (skipFirst).
		a = append(a, "--cursor="+r.position)
	} else {
		a = append(a, "--since=@"+strconv.FormatInt(r.since.Unix(), 10))
	}
	return append(a, Matches(programs)...)
}

// Run reads the journal into out until ctx ends, starting journalctl again
// (with back-off) whenever it exits. It returns when ctx is done; it does
// not close out.
func (r *Reader) Run(ctx context.Context, out chan<- Entry) {
	backoff := r.cfg.minBackoff
	for {
		r.mu.Lock()
		programs := r.programs
		runCtx, cancel := context.WithCancel(ctx)
		r.restart = cancel
		r.mu.Unlock()
		started := r.cfg.Now()
		n, err := r.runOnce(runCtx, programs, out)
		reprogrammed := runCtx.Err() != nil && ctx.Err() == nil
		cancel()
		if ctx.Err() != nil {
			return
		}
		if reprogrammed {
			r.log.Info().Strs("programs", r.currentPrograms()).Msg("journal matches changed; journalctl restarted where it was")
			continue
		}
		r.stats.restarts.Add(1)
		if n == 0 && errors.Is(err, errCursorRefused) {
			// A cursor journalctl cannot seek to (a cursor file that is not
			// one of journald's, or a journal that changed beyond
			// recognition).
			r.log.Warn().Err(err).Str("file", r.cfg.CursorFile).Time("since", r.cfg.Now().Add(-r.cfg.Grace)).
				Msg("journalctl refused the saved cursor; reading the journal from one grace period ago instead")
			r.position, r.since = "", r.cfg.Now().Add(-r.cfg.Grace)
			continue
		}
		if n > 0 || r.cfg.Now().Sub(started) >= r.cfg.maxBackoff {
			backoff = r.cfg.minBackoff
		}
		r.log.Warn().Err(err).Int64("entries", n).Dur("restart_in", backoff).
			Msg("journalctl exited; starting it again where it stopped")
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, r.cfg.maxBackoff)
	}
}

func (r *Reader) currentPrograms() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.programs
}

// errCursorRefused: journalctl exited saying it could not seek to the
// cursor.
var errCursorRefused = errors.New("journalctl cannot seek to the cursor")

// runOnce runs journalctl once and reads its output until it exits or ctx
// ends; it returns how many entries it handed on and why journalctl ended.
func (r *Reader) runOnce(ctx context.Context, programs []string, out chan<- Entry) (int64, error) {
	if len(programs) == 0 {
		// No parser has a program tag: nothing in the journal can grant.
		<-ctx.Done()
		return 0, nil
	}
	cmd := exec.CommandContext(ctx, r.cfg.Journalctl, r.args(programs)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	dieWithParent(cmd)
	cmd.Env = append(os.Environ(), "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=", "SYSTEMD_LESS=")
	stderr := &tailWriter{log: r.log, max: 4096}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	r.skipFirst = ""
	if r.position != "" {
		r.skipFirst = r.position
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", r.cfg.Journalctl, err)
	}
	r.stats.running.Store(1)
	n, readErr := r.read(ctx, stdout, out)
	if readErr != nil {
		// Stop journalctl; what it still writes is not read.
		_ = cmd.Cancel()
	}
	err = cmd.Wait()
	r.stats.running.Store(0)
	if readErr != nil && ctx.Err() == nil {
		return n, readErr
	}
	msg := stderr.String()
	if strings.Contains(msg, "cursor") {
		return n, fmt.Errorf("%w: %v: %s", errCursorRefused, err, msg)
	}
	if err == nil {
		err = errors.New("exit status 0")
	}
	if msg != "" {
		return n, fmt.Errorf("%w: %s", err, msg)
	}
	return n, err
}

// read hands on every entry journalctl prints, until its output ends or
// ctx does.
func (r *Reader) read(ctx context.Context, stdout io.Reader, out chan<- Entry) (int64, error) {
	br := bufio.NewReaderSize(stdout, 256<<10)
	var (
		n    int64
		long []byte
		f    fields
	)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: gather it up to maxLine,
			// skip the rest.
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				if len(long) <= r.cfg.maxLine {
					long = append(long, line...)
				}
			}
			if len(long) > r.cfg.maxLine {
				r.stats.skip(reasonTooLong)
				continue
			}
			line = long
		}
		if len(line) > 0 && err == nil || len(line) > 0 && errors.Is(err, io.EOF) {
			if e, ok := r.entry(bytes.TrimRight(line, "\r\n"), &f); ok {
				select {
				case out <- e:
					n++
				case <-ctx.Done():
					return n, nil
				}
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return n, nil
			}
			return n, err
		}
	}
}

// entry turns one line into an Entry; false if it is skipped (counted).
func (r *Reader) entry(line []byte, f *fields) (Entry, bool) {
	if len(line) == 0 || bytes.HasPrefix(line, []byte("-- ")) {
		return Entry{}, false // journalctl's own remarks ("-- No entries --")
	}
	if err := decodeEntry(line, f); err != nil {
		r.stats.skip(reasonMalformed)
		return Entry{}, false
	}
	cursor, ok := f.get(fCursor)
	if !ok || checkCursor(cursor) != nil {
		r.stats.skip(reasonMalformed)
		return Entry{}, false
	}
	if r.skipFirst != "" {
		first := r.skipFirst
		r.skipFirst = ""
		if cursor == first {
			return Entry{}, false // the entry at the cursor, read before
		}
	}
	now := r.cfg.Now()
	at, stale := now, false
	if us, ok := f.get(fRealtime); ok {
		if v, err := strconv.ParseInt(us, 10, 64); err == nil && v > 0 {
			t := time.UnixMicro(v)
			switch {
			case t.After(now):
			case t.Before(now.Add(-r.cfg.Grace)):
				at, stale = now.Add(-r.cfg.Grace), true
			default:
				at = t
			}
		}
	}
	// Whatever happens to the entry, its cursor is now a place to resume
	// after (once durable).
	r.seq++
	r.position = cursor
	r.mu.Lock()
	r.addPending(r.seq, cursor)
	if at.After(r.newest) {
		r.newest = at
	}
	r.mu.Unlock()
	r.stats.entries.Add(1)
	e := Entry{Seq: r.seq, Stale: stale}
	e.Received, e.Transport, e.Peer = at, Transport, Transport
	switch {
	case f.multi&(1<<fMessage|1<<fIdentifier|1<<fSyslogPID|1<<fHostname) != 0:
		// Two messages or two tags in one entry (the native protocol lets
		// a client repeat its own fields): which one would be guessing.
		r.stats.skip(reasonAmbiguous)
		e.Program, e.Text = "", ""
		return e, true
	}
	msg, ok := f.get(fMessage)
	if !ok {
		r.stats.skip(reasonNoMessage)
		return e, true
	}
	if len(msg) > receiver.DefaultMaxMessage {
		r.stats.skip(reasonTooLong)
		return e, true
	}
	e.Format = "journal"
	e.Host, _ = f.get(fHostname)
	e.Program, _ = f.get(fIdentifier)
	e.Text = msg
	if e.PID, _ = f.get(fSyslogPID); e.PID == "" {
		e.PID, _ = f.get(fPID)
	}
	e.Origin = claim(f)
	return e, true
}

// claim is the entry's origin: its trusted fields, which journald sets from
// the writer's credentials. An entry without a readable _UID (or with a
// trusted field twice, which journald never writes) vouches for nobody.
func claim(f *fields) origin.Claim {
	const trusted = 1<<fUID | 1<<fGID | 1<<fPID | 1<<fComm | 1<<fExe | 1<<fUnit
	if f.multi&trusted != 0 {
		return origin.Refuse(origin.Malformed)
	}
	var params []origin.Param
	for _, p := range [...]struct {
		field int
		name  string
	}{{fUID, "uid"}, {fGID, "gid"}, {fPID, "pid"}, {fComm, "comm"}, {fExe, "exe"}, {fUnit, "unit"}} {
		if v, ok := f.get(p.field); ok {
			params = append(params, origin.Param{Name: p.name, Value: v})
		}
	}
	o, err := origin.ParseElement(params)
	if err != nil {
		return origin.Refuse(origin.Malformed)
	}
	return origin.Verify(o)
}

// SkipStale counts a login not granted because its entry was older than
// the grace period when read.
func (r *Reader) SkipStale() { r.stats.skip(reasonStale) }

// tailWriter keeps the last max bytes journalctl wrote to stderr, and logs
// each line (it says why it stopped, or that it cannot read the journal).
type tailWriter struct {
	log  zerolog.Logger
	max  int
	mu   sync.Mutex
	buf  []byte
	line []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-w.max:]...)
	}
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			break
		}
		if l := strings.TrimSpace(string(w.line[:i])); l != "" {
			w.log.Warn().Str("journalctl", truncate(l, 512)).Msg("journalctl says")
		}
		w.line = w.line[i+1:]
	}
	if len(w.line) > w.max {
		w.line = w.line[:0]
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.TrimSpace(string(w.buf))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
