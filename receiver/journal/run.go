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
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Run reads the journal into out until ctx ends, starting journalctl again
// (with back-off) whenever it exits. It returns when ctx is done; it does
// not close out.
//
// A journalctl that exits stuckAfter times in a row without delivering an
// entry is stuck: an entry it cannot print (or a journal it cannot read)
// would stop every later login. The reader then asks journalctl for the
// cursor of the next entry only (probe: no MESSAGE printed), skips that
// entry (counted as stuck, logged as an error) and goes on after it; and
// Health reports the reader unhealthy while it is stuck and for a while
// after a skip.
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
			r.position, r.positionSkipped, r.since = "", false, r.cfg.Now().Add(-r.cfg.Grace)
			continue
		}
		if n > 0 || r.cfg.Now().Sub(started) >= r.cfg.maxBackoff {
			backoff = r.cfg.minBackoff
		}
		if r.exited(ctx, programs, n, err) {
			backoff = r.cfg.minBackoff
			continue
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
	if r.position != "" && !r.positionSkipped {
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
					if n++; n == 1 {
						r.delivering() // journalctl is past whatever stopped it
					}
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
