package journal

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// When journalctl cannot get past an entry
//
// journalctl prints the entries of a run in order and stops at the first
// it cannot print: it exits (out of memory building the entry's JSON, a
// damaged entry), and every run started at the same position stops at the
// same entry, having delivered none. Left alone, the reader would restart
// it there forever and read no later login, across restarts of relaygate
// too (the saved cursor is before that entry).
//
// So after stuckAfter runs in a row that delivered nothing, the reader asks
// journalctl which entry comes next, printing only its cursor and _UID (the
// probe: it never formats MESSAGE or any field a client chose). That is the
// entry the runs did not get past: journalctl started at the same place
// and delivered nothing, and the probe shows an entry there. The reader
// skips it (relaygate_journal_skipped_total{reason="stuck"}, an error in
// the log with its cursor) and resumes with --after-cursor of it. Its
// cursor is never saved: a relaygate restarted before a later entry is read
// resumes before it, gets stuck again, and skips it again.
//
// If the probe shows nothing (journalctl cannot read the journal at all:
// permissions, a damaged file), nothing is skipped. Either way Health
// reports the reader unhealthy while runs keep ending empty, and for
// stuckUnhealthyFor after a skip (an entry skipped may have been a login).

// stuckUnhealthyFor is how long Health reports a skipped entry.
const stuckUnhealthyFor = 10 * time.Minute

// probeTimeout bounds one probe run.
const probeTimeout = 30 * time.Second

// exited records the end of a run that delivered n entries (err: why it
// ended) and, when the runs are stuck, skips the entry they cannot get
// past. It reports whether it skipped one.
func (r *Reader) exited(ctx context.Context, programs []string, n int64, err error) bool {
	if n > 0 {
		return false // delivering reset the count
	}
	r.mu.Lock()
	if r.emptyRuns == 0 {
		r.emptySince = r.cfg.Now()
	}
	r.emptyRuns++
	if err != nil {
		r.emptyErr = truncate(err.Error(), 512)
	}
	runs, since := r.emptyRuns, r.emptySince
	r.mu.Unlock()
	if runs < r.cfg.stuckAfter {
		return false
	}
	next, perr := r.probe(ctx, programs)
	if ctx.Err() != nil {
		return false
	}
	after := r.position
	if after == "" {
		after = "since " + r.since.UTC().Format(time.RFC3339)
	}
	if next == "" {
		if runs == r.cfg.stuckAfter {
			ev := r.log.Error().Err(err).Int("runs", runs).Time("since", since).Str("after", after)
			if perr != nil {
				ev = ev.AnErr("probe", perr)
			}
			ev.Msg("journalctl keeps exiting without delivering an entry, and shows no entry to skip: no login in the journal is read " +
				"(can relaygate read the journal? is a journal file damaged? journalctl --verify)")
		}
		return false
	}
	r.stats.skip(reasonStuck)
	r.log.Error().Err(err).Int("runs", runs).Time("since", since).Str("after", after).Str("skipped", next).
		Msg("journalctl exited again and again at the same journal entry without printing it; that entry is skipped " +
			"(a login in it is not granted) and reading goes on after it")
	r.position, r.positionSkipped = next, true
	r.mu.Lock()
	r.emptyRuns, r.emptySince, r.emptyErr = 0, time.Time{}, ""
	r.stuckSkipAt, r.stuckSkipped = r.cfg.Now(), next
	r.mu.Unlock()
	return true
}

// delivering records that a run delivered its first entry: the runs are
// not stuck.
func (r *Reader) delivering() {
	r.mu.Lock()
	r.emptyRuns, r.emptySince, r.emptyErr = 0, time.Time{}, ""
	r.mu.Unlock()
}

// probe returns the cursor of the first entry at the position that is not
// the position's own: the entry a run starting there prints first. It
// prints no field but _UID (journalctl adds the cursor and timestamps), so
// whatever keeps journalctl from printing the entry does not apply. ""
// when there is none.
func (r *Reader) probe(ctx context.Context, programs []string) (string, error) {
	lines := "1"
	if r.position != "" && !r.positionSkipped {
		lines = "2" // the entry at the cursor itself, then the next
	}
	args := append([]string{"--output=json", "--no-pager", "--output-fields=_UID", "--lines=" + lines}, r.sourceArgs()...)
	args = append(append(args, r.positionArgs()...), Matches(programs)...)
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.cfg.Journalctl, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	dieWithParent(cmd)
	cmd.Env = append(os.Environ(), "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=", "SYSTEMD_LESS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	var (
		next string
		f    fields
	)
	sc := bufio.NewScanner(io.LimitReader(stdout, 1<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if next != "" {
			continue // read to the end, so that journalctl is not stopped by a full pipe
		}
		if decodeEntry(sc.Bytes(), &f) != nil {
			continue
		}
		if c, ok := f.get(fCursor); ok && checkCursor(c) == nil && !(lines == "2" && c == r.position) {
			next = c
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if next != "" {
		return next, nil
	}
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, truncate(msg, 512))
		}
		return "", err
	}
	return "", nil
}

// Health is "" while the reader works; else why not (for /healthz): runs
// keep ending without delivering an entry, or an entry was skipped as
// stuck less than stuckUnhealthyFor ago.
func (r *Reader) Health() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.emptyRuns >= r.cfg.stuckAfter {
		msg := fmt.Sprintf("journal: journalctl has exited %d times in a row without delivering an entry, since %s; no later login in the journal is read",
			r.emptyRuns, r.emptySince.UTC().Format(time.RFC3339))
		if r.emptyErr != "" {
			msg += " (last: " + r.emptyErr + ")"
		}
		return msg
	}
	if !r.stuckSkipAt.IsZero() && r.cfg.Now().Sub(r.stuckSkipAt) < stuckUnhealthyFor {
		return fmt.Sprintf("journal: at %s journalctl could not get past the entry %s, which was skipped (relaygate_journal_skipped_total{reason=\"stuck\"}; a login in it was not granted): see the log",
			r.stuckSkipAt.UTC().Format(time.RFC3339), r.stuckSkipped)
	}
	return ""
}
