package journal

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// How a cursor becomes durable
//
// Every entry the reader hands on carries a Seq, numbered from 1 in the
// order journalctl printed the entries. The daemon gives each entry's
// grant-table event that Seq; an entry that makes no event (most of them:
// not a login, refused, unmatched) is acknowledged by a mark event
// (grants.EventMark) carrying its Seq, coalesced so that a burst of noise
// costs one mark. The grant table applies events in order and, once
// everything it applied is in the state file and synced, reports the
// greatest Seq applied (cdbwriter's Config.OnDurable → Reader.Durable).
// From then on a crash loses no effect of any entry up to that Seq, so the
// cursor of that entry is the place to resume: the reader keeps the cursor
// of every entry handed on but not yet durable (pending), and a goroutine of
// its own writes the newest durable one to the cursor file (a temporary
// file, fsync, rename, fsync of the directory), never blocking the table.
//
// One exception keeps two-line daemons whole: the address line of a
// two-line login (parsers.Connect) lives in the correlator's memory until
// its success line comes. The daemon reports it with Hold, and the saved
// cursor stays before the oldest held line for as long as the correlator
// could still join it (HoldFor), so a restart in between reads the
// address line again.
//
// The result is at-least-once: after a crash the entries after the saved
// cursor are read again, and a login read twice only extends its grant
// (from its own journal time, so not beyond what it earned).

// maxPending bounds the cursors kept for entries not yet durable. When it
// is reached (the state file cannot be written for a long while), every
// other one is dropped: the saved cursor can then only be older than it
// could have been, which replays more after a crash, never less.
const maxPending = 1 << 16

// maxHolds bounds the held address lines, as the correlator bounds them.
const maxHolds = 10000

type pendingCursor struct {
	seq    uint64
	cursor string
}

type hold struct {
	seq uint64
	at  time.Time
}

// add records the cursor of the entry numbered seq; r.mu is held.
func (r *Reader) addPending(seq uint64, cursor string) {
	if len(r.pending)-r.pendingHead >= maxPending {
		kept := r.pending[:0]
		for i, p := range r.pending[r.pendingHead:] {
			if i%2 == 1 {
				kept = append(kept, p)
			}
		}
		clear(r.pending[len(kept):])
		r.pending, r.pendingHead = kept, 0
	}
	if r.pendingHead > 0 && r.pendingHead >= len(r.pending)/2 {
		n := copy(r.pending, r.pending[r.pendingHead:])
		clear(r.pending[n:])
		r.pending, r.pendingHead = r.pending[:n], 0
	}
	r.pending = append(r.pending, pendingCursor{seq, cursor})
}

// Durable tells the reader that the effect of every entry up to seq is in
// the state file, synced (cdbwriter's Config.OnDurable). It never blocks:
// the cursor file is written by the reader's own goroutine.
func (r *Reader) Durable(seq uint64) {
	for {
		old := r.durable.Load()
		if seq <= old || r.durable.CompareAndSwap(old, seq) {
			break
		}
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Hold keeps the saved cursor before entry seq, a two-line daemon's address
// line read at at, until HoldFor has passed (in journal time) or the
// newest maxHolds holds have replaced it.
func (r *Reader) Hold(seq uint64, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.holds) >= maxHolds {
		r.holds = r.holds[1:]
	}
	r.holds = append(r.holds, hold{seq, at})
}

// durableCursor returns the cursor to save now ("" if none is new) and the
// number of entries it covers; r.mu is held.
func (r *Reader) durableCursor() string {
	limit := r.durable.Load()
	// Holds that the correlator has forgotten by now no longer limit.
	for len(r.holds) > 0 && r.newest.Sub(r.holds[0].at) > r.cfg.HoldFor {
		r.holds = r.holds[1:]
	}
	if len(r.holds) > 0 && r.holds[0].seq-1 < limit {
		limit = r.holds[0].seq - 1
	}
	cursor := ""
	for r.pendingHead < len(r.pending) && r.pending[r.pendingHead].seq <= limit {
		cursor = r.pending[r.pendingHead].cursor
		r.pending[r.pendingHead] = pendingCursor{}
		r.pendingHead++
	}
	return cursor
}

// saveDurable writes the newest durable cursor to the cursor file, if it
// changed. Only the cursor goroutine and Close call it.
func (r *Reader) saveDurable() {
	r.mu.Lock()
	cursor := r.durableCursor()
	r.mu.Unlock()
	if cursor == "" || cursor == r.saved {
		return
	}
	if err := writeCursorFile(r.cfg.CursorFile, cursor); err != nil {
		r.stats.cursorErrors.Add(1)
		if now := r.cfg.Now(); now.Sub(r.lastCursorWarn) >= 10*time.Second {
			r.lastCursorWarn = now
			r.log.Warn().Err(err).Str("file", r.cfg.CursorFile).
				Msg("cannot save the journal cursor; after a restart more of the journal is read again (nothing is lost)")
		}
		return
	}
	r.saved = cursor
	r.stats.cursorSaves.Add(1)
}

// cursorEvery is the least time between two writes of the cursor file.
// A mark can make entries durable many times a millisecond; writing (and
// fsyncing) the file for each would cost more than reading them. A crash
// loses at most this much of the cursor's progress, which only means
// reading those entries again.
const cursorEvery = 100 * time.Millisecond

// cursorLoop saves the durable cursor when Durable says more is on disk,
// at most every cursorEvery, until stop is closed (Close saves the last).
func (r *Reader) cursorLoop() {
	defer close(r.cursorDone)
	for {
		select {
		case <-r.kick:
		case <-r.stop:
			return
		}
		r.saveDurable()
		select {
		case <-time.After(cursorEvery):
		case <-r.stop:
			return
		}
	}
}

// maxCursor is the longest cursor accepted from the cursor file; journald's
// are about 120 bytes.
const maxCursor = 1024

// readCursorFile returns the saved cursor, "" if there is none. A file
// that is not a cursor is reported, never fatal: the reader then starts
// as without one.
func readCursorFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	c := string(bytes.TrimSpace(b))
	if err := checkCursor(c); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// checkCursor accepts what journald's cursors look like: printable ASCII
// without spaces, of a sane length.
func checkCursor(c string) error {
	if c == "" || len(c) > maxCursor {
		return fmt.Errorf("not a journal cursor (%d bytes)", len(c))
	}
	for i := 0; i < len(c); i++ {
		if c[i] <= ' ' || c[i] >= 0x7f {
			return fmt.Errorf("not a journal cursor (byte %#x at %d)", c[i], i)
		}
	}
	return nil
}

// writeCursorFile replaces the cursor file atomically: a temporary file in
// the same directory, fsync, rename, fsync of the directory. A crash leaves
// the old cursor or the new one, never a mix.
func writeCursorFile(path, cursor string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.WriteString(cursor + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
