package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// The cursor: <state>.fleet-cursor holds the stream sequence up to which
// every event's effect is in the state file (the daemon says so through
// Durable, from cdbwriter's OnDurable), so that a restart resumes there:
//
//	relaygate-fleet-cursor 1 <stream> <stream created, unix ns> <sequence> <saved at, unix ns>
//
// It is written like the map: a temporary file, fsync, rename, fsync of
// the directory; at most every cursorEvery. A stream that was deleted and
// made again (another creation time) or a cursor older than the catch-up
// window is not resumed from: the start replays the window instead.
type cursorState struct {
	path   string
	loaded savedCursor
	kick   chan struct{}

	mu      sync.Mutex
	stream  string
	created int64
	saved   durableMark
	// durable is tagged with its stream's creation time, so that what
	// becomes durable of a stream that was deleted and made again never
	// counts for the new one (whose sequences start at 1 anew).
	durable atomic.Pointer[durableMark]
}

type durableMark struct {
	created int64
	seq     uint64
}

type savedCursor struct {
	ok      bool
	stream  string
	created int64
	seq     uint64
	written time.Time
}

const cursorMagic = "relaygate-fleet-cursor 1"

// cursorEvery is the least time between two writes of the cursor file; a
// crash loses at most this much of its progress, which only replays more.
const cursorEvery = 100 * time.Millisecond

// load reads the cursor the last run saved at path; none, or one that
// cannot be read, means replaying the catch-up window.
func (c *cursorState) load(path string, log zerolog.Logger) {
	c.path = path
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn().Err(err).Msg("fleet: cannot read the cursor; replaying the catch-up window instead")
		}
		return
	}
	s, ok := parseCursor(b)
	if !ok {
		log.Warn().Str("file", path).Msg("fleet: the cursor file is not one; replaying the catch-up window instead")
		return
	}
	c.loaded = s
}

func parseCursor(b []byte) (savedCursor, bool) {
	var s savedCursor
	line, ok := bytes.CutSuffix(b, []byte("\n"))
	if !ok || !bytes.HasPrefix(line, []byte(cursorMagic+" ")) {
		return s, false
	}
	fields := strings.Fields(string(line[len(cursorMagic)+1:]))
	if len(fields) != 4 || !tokenRE.MatchString(fields[0]) {
		return s, false
	}
	created, err1 := strconv.ParseInt(fields[1], 10, 64)
	seq, err2 := strconv.ParseUint(fields[2], 10, 64)
	written, err3 := strconv.ParseInt(fields[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return s, false
	}
	return savedCursor{ok: true, stream: fields[0], created: created, seq: seq, written: time.Unix(0, written)}, true
}

// setStream says which stream the follower reads; another one than
// before (deleted and made again) starts the durable sequence over.
func (c *cursorState) setStream(name string, created time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := created.UnixNano()
	if m := c.durable.Load(); m == nil || m.created != n || c.stream != name {
		c.durable.Store(&durableMark{created: n})
	}
	c.stream, c.created = name, n
}

// Durable says that the effect of every message up to sequence seq of
// the stream read now is in the state file. It never blocks.
func (f *Fleet) Durable(seq uint64) {
	if !f.Follows() {
		return
	}
	if m := f.cursor.durable.Load(); m != nil {
		f.DurableOf(m.created)(seq)
	}
}

// DurableOf is Durable for the items of the stream created at stream
// (Item.Stream): once the follower reads another stream, it does nothing.
func (f *Fleet) DurableOf(stream int64) func(seq uint64) {
	return func(seq uint64) {
		if !f.Follows() {
			return
		}
		c := &f.cursor
		for {
			old := c.durable.Load()
			if old == nil || old.created != stream || seq <= old.seq {
				return
			}
			if c.durable.CompareAndSwap(old, &durableMark{created: stream, seq: seq}) {
				break
			}
		}
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

func (f *Fleet) runCursor() {
	defer f.wg.Done()
	for {
		select {
		case <-f.cursor.kick:
		case <-f.ctx.Done():
			return
		}
		f.saveCursor()
		select {
		case <-time.After(cursorEvery):
		case <-f.ctx.Done():
			return
		}
	}
}

// saveCursor writes the durable sequence, if it moved.
func (f *Fleet) saveCursor() {
	c := &f.cursor
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.durable.Load()
	if m == nil || m.seq == 0 || *m == c.saved || c.stream == "" || m.created != c.created {
		return
	}
	line := fmt.Sprintf("%s %s %d %d %d\n", cursorMagic, c.stream, m.created, m.seq, f.now().UnixNano())
	if err := writeFileAtomic(c.path, []byte(line)); err != nil {
		f.stats.cursorErrs.Add(1)
		f.warn(err, "fleet: cannot save the cursor; a restart replays more of the stream (nothing is lost)")
		return
	}
	c.saved = *m
}

func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	syncDir(dir)
	return nil
}
