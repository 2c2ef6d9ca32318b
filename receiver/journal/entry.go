package journal

import (
	"bytes"
	"strconv"
	"time"

	"github.com/relaygate/relaygate/internal/origin"
	"github.com/relaygate/relaygate/receiver"
)

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
	r.position, r.positionSkipped = cursor, false
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
