package fleet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// The outbox holds the events this relaygate must still publish, so that
// neither an engine that is down nor a kill -9 loses one. It is a file
// beside the state file, <state>.fleet-outbox, one line per event:
//
//	<id> <event JSON>\n
//
// Events are appended and the file fsynced before they are published
// (group commit: one fsync for every event that arrived meanwhile); an
// event leaves once the stream acknowledged it (PubAck, a duplicate
// included). When every event is acknowledged the file is cut to nothing;
// while some wait, it is rewritten without the acknowledged ones (a
// temporary file, fsync, rename) once those outnumber the rest. At start
// the file is read back and everything in it is published again: what was
// acknowledged just before a crash comes back as a duplicate, which the
// stream drops within its duplicate window and which is harmless after it.
//
// It is bounded: at most max events wait; beyond that a new event is
// dropped (it still granted locally) and counted. Only the goroutine that
// owns an Outbox calls its methods.
type Outbox struct {
	path  string
	max   int
	f     *os.File // nil: the file could not be opened; events wait in memory only
	q     []*outEntry
	lines int // lines in the file
	// unacked counts the entries in q not yet acknowledged.
	unacked int
}

type outEntry struct {
	id     string
	data   []byte // the encoded event
	acked  bool
	flight bool // handed to the sender, no answer yet
}

// OpenOutbox opens (creating) the outbox at path and reads back what an
// earlier run left in it: up to max events, the newest kept. A last line
// a crash cut short, and any line that is not an event, is skipped;
// skipped returns how many.
func OpenOutbox(path string, max int) (o *Outbox, skipped int, err error) {
	o = &Outbox{path: path, max: max}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("fleet outbox %s: %w", path, err)
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			skipped++ // cut short by a crash: never published from here
			break
		}
		line := b[:i]
		b = b[i+1:]
		sp := bytes.IndexByte(line, ' ')
		// The id becomes the Nats-Msg-Id header: a damaged one (huge, or
		// with control characters) would make a message the server
		// refuses, at the head of the queue, forever.
		if sp <= 0 || len(line)-sp-1 > MaxEventBytes || !tokenRE.Match(line[:sp]) {
			skipped++
			continue
		}
		data := line[sp+1:]
		if _, err := Decode(data); err != nil {
			skipped++
			continue
		}
		o.q = append(o.q, &outEntry{id: string(line[:sp]), data: bytes.Clone(data)})
	}
	if len(o.q) > max {
		skipped += len(o.q) - max
		o.q = o.q[len(o.q)-max:]
	}
	o.unacked = len(o.q)
	// Write what was read back as a fresh file: a torn tail must not be
	// appended to.
	if err := o.rewrite(); err != nil {
		return nil, 0, err
	}
	return o, skipped, nil
}

// Len is how many events wait for the stream's acknowledgement.
func (o *Outbox) Len() int { return o.unacked }

// Add appends events (id, encoded event) and syncs the file. It returns
// how many did not fit (dropped) and the error of a write that failed:
// those events then wait in memory only, and are still published.
func (o *Outbox) Add(ids []string, data [][]byte) (dropped int, err error) {
	start := len(o.q)
	for i := range ids {
		if o.unacked >= o.max {
			dropped += len(ids) - i
			break
		}
		o.q = append(o.q, &outEntry{id: ids[i], data: data[i]})
		o.unacked++
	}
	added := o.q[start:]
	if len(added) == 0 {
		return dropped, nil
	}
	if o.f == nil {
		// The file was lost to an error: write it anew, with these.
		return dropped, o.rewrite()
	}
	var buf bytes.Buffer
	for _, e := range added {
		buf.WriteString(e.id)
		buf.WriteByte(' ')
		buf.Write(e.data)
		buf.WriteByte('\n')
	}
	fi, err := o.f.Stat()
	if err != nil {
		return dropped, fmt.Errorf("fleet outbox %s: %w", o.path, err)
	}
	if _, err := o.f.Write(buf.Bytes()); err != nil {
		// Cut back to the last good line, so the next append starts a
		// line; what failed stays in memory.
		_ = o.f.Truncate(fi.Size())
		return dropped, fmt.Errorf("fleet outbox %s: %w", o.path, err)
	}
	if err := o.f.Sync(); err != nil {
		return dropped, fmt.Errorf("fleet outbox %s: sync: %w", o.path, err)
	}
	o.lines += len(added)
	return dropped, nil
}

// Take marks up to n waiting events as in flight and returns them, oldest
// first.
func (o *Outbox) Take(n int) []*outEntry {
	var out []*outEntry
	for _, e := range o.q {
		if len(out) == n {
			break
		}
		if !e.acked && !e.flight {
			e.flight = true
			out = append(out, e)
		}
	}
	return out
}

// Pending reports whether an event waits that is not in flight.
func (o *Outbox) Pending() bool {
	for _, e := range o.q {
		if !e.acked && !e.flight {
			return true
		}
	}
	return false
}

// Done records the sender's answer for e: acknowledged, or to be sent
// again.
func (o *Outbox) Done(e *outEntry, acked bool) {
	e.flight = false
	if acked && !e.acked {
		e.acked = true
		o.unacked--
	}
}

// Trim drops the acknowledged events at the head of the queue and keeps
// the file small: cut to nothing when nothing waits, rewritten when the
// acknowledged lines outnumber the waiting ones by far.
func (o *Outbox) Trim() error {
	i := 0
	for i < len(o.q) && o.q[i].acked {
		i++
	}
	if i > 0 {
		n := copy(o.q, o.q[i:])
		clear(o.q[n:])
		o.q = o.q[:n]
	}
	if o.f == nil {
		return nil
	}
	switch {
	case o.unacked == 0 && o.lines > 0:
		if err := o.f.Truncate(0); err != nil {
			return o.reopen(err)
		}
		if err := o.f.Sync(); err != nil {
			return o.reopen(err)
		}
		o.lines = 0
	case o.lines > 2*o.unacked+4096:
		return o.rewrite()
	}
	return nil
}

// reopen answers a failed truncate or sync by writing the file anew.
func (o *Outbox) reopen(cause error) error {
	if err := o.rewrite(); err != nil {
		return fmt.Errorf("fleet outbox %s: %v; %w", o.path, cause, err)
	}
	return nil
}

// rewrite replaces the file with the unacknowledged events: a temporary
// file, fsync, rename, fsync of the directory.
func (o *Outbox) rewrite() error {
	dir := filepath.Dir(o.path)
	tmp, err := os.CreateTemp(dir, filepath.Base(o.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("fleet outbox %s: %w", o.path, err)
	}
	w := bufio.NewWriter(tmp)
	n := 0
	for _, e := range o.q {
		if e.acked {
			continue
		}
		w.WriteString(e.id)
		w.WriteByte(' ')
		w.Write(e.data)
		w.WriteByte('\n')
		n++
	}
	err = w.Flush()
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), o.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("fleet outbox %s: %w", o.path, err)
	}
	syncDir(dir)
	if o.f != nil {
		o.f.Close()
		o.f = nil
	}
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("fleet outbox %s: %w", o.path, err)
	}
	o.f, o.lines = f, n
	return nil
}

// Close closes the file; what waits in it is published by the next run.
func (o *Outbox) Close() error {
	if o.f == nil {
		return nil
	}
	err := o.f.Close()
	o.f = nil
	return err
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

var _ io.Closer = (*Outbox)(nil)
