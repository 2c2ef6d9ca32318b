package cdbwriter

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// StateDamage describes the parts of a state file that could not be read.
type StateDamage struct {
	Path      string
	BadLines  int   // lines that are not a grant
	FirstBad  int   // 1-based line number of the first of them
	LongLines int   // lines over the line bound, skipped unread
	NoHeader  bool  // the file does not start with relaygate's header (an empty file)
	StoppedAt int64 // the read budget ran out at this byte; the rest is unread
}

func (d *StateDamage) Error() string {
	var parts []string
	if d.NoHeader {
		parts = append(parts, "no relaygate header (empty, or not a state file)")
	}
	if d.BadLines > 0 {
		parts = append(parts, fmt.Sprintf("%d unreadable line(s), first at line %d", d.BadLines, d.FirstBad))
	}
	if d.LongLines > 0 {
		parts = append(parts, fmt.Sprintf("%d line(s) longer than %d bytes skipped", d.LongLines, maxStateLine))
	}
	if d.StoppedAt > 0 {
		parts = append(parts, fmt.Sprintf("read stopped at byte %d: more than a state file for -max-entries can hold", d.StoppedAt))
	}
	return fmt.Sprintf("state file %s: %s", d.Path, strings.Join(parts, "; "))
}

func (d *StateDamage) damaged() bool {
	return d.NoHeader || d.BadLines > 0 || d.LongLines > 0 || d.StoppedAt > 0
}

// FileError is a map or state file that exists but cannot be used at all:
// unreadable, or not a regular file. relaygate does not start over it, so
// it never replaces a map or state it could not read.
type FileError struct {
	What    string // "map" or "state file"
	Path    string
	Problem string
	Fix     string
	Err     error
}

func (e *FileError) Error() string {
	s := e.What + " " + e.Path + " " + e.Problem
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s + " — fix: " + e.Fix
}

func (e *FileError) Unwrap() error { return e.Err }

// openFunc is os.OpenFile; tests replace it to make a file unreadable to
// root.
type openFunc func(name string, flag int, perm os.FileMode) (*os.File, error)

// openExisting opens an existing map or state file for reading: nil and no
// error if there is none. It follows symlinks but accepts only a regular
// file, checked on the opened descriptor; O_NONBLOCK keeps a FIFO from
// hanging the open. fix says how to make an unreadable file usable.
func openExisting(open openFunc, what, path, fix string) (*os.File, error) {
	f, err := open(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		if errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENXIO) {
			return nil, &FileError{What: what, Path: path, Problem: "is not a regular file", Err: err,
				Fix: "point relaygate at a regular file, or move what is at " + path + " away"}
		}
		return nil, &FileError{What: what, Path: path, Problem: "exists but cannot be opened", Err: err, Fix: fix}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, &FileError{What: what, Path: path, Problem: "exists but cannot be examined", Err: err, Fix: fix}
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &FileError{What: what, Path: path, Problem: "is a " + fileKind(fi.Mode()) + ", not a regular file",
			Fix: "point relaygate at a regular file, or move what is at " + path + " away"}
	}
	return f, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

const stateFix = "make it readable and writable by the user relaygate runs as, or move it away " +
	"(relaygate then carries the map's addresses over for one grace period)"

// maxStateLine bounds a state line. The longest relaygate writes is a
// 256-byte user name escaped six-fold plus 256 open sessions, well under
// this; anything longer is damage and is skipped without being held.
const maxStateLine = 1 << 20

// stateLimits bounds a state file read.
type stateLimits struct {
	maxBytes int64
}

// defaultStateBytes is the read budget of LoadState, for readers that do
// not know -max-entries (relaygate list).
const defaultStateBytes = 4 << 30

// stateLimitsFor is the budget for a table of maxEntries grants: the file
// holds up to about three lines a grant plus the append slack before it is
// rewritten; 512 bytes a line is several times a real line's length.
func stateLimitsFor(maxEntries int) stateLimits {
	return stateLimits{maxBytes: max(256<<20, int64(4*maxEntries+2*defaultStateSlack)*512)}
}

// LoadState reads the grants in the state file at path: for each address
// its last line, none for a removed one. A missing file is no grants and no
// error. A file that exists but is unreadable or not a regular file is a
// *FileError. A damaged file returns the grants that could be read together
// with a *StateDamage error; a last line cut short without its newline is
// an append a crash interrupted, which never reached the map, and is not
// damage. The file is read a line at a time with each line and the whole
// read bounded, so loading a million grants does not also hold the whole
// file in memory, and no file makes it hold more.
func LoadState(path string) ([]Grant, error) {
	grants, _, err := loadState(os.OpenFile, path, stateLimits{maxBytes: defaultStateBytes})
	return grants, err
}

// loadState is LoadState that also returns every address the file has a
// line for (live, expired or removed): the addresses it accounts for.
// relaygate list reads it; a start loads the file straight into its table
// instead (tableLoad).
func loadState(open openFunc, path string, lim stateLimits) ([]Grant, map[netip.Addr]int, error) {
	var (
		grants []Grant
		at     = make(map[netip.Addr]int) // address → its index in grants
	)
	err := readState(open, path, lim, func(g *Grant) {
		if j, ok := at[g.Addr]; ok {
			grants[j] = *g
		} else {
			at[g.Addr] = len(grants)
			grants = append(grants, *g)
		}
	})
	var damage *StateDamage
	if err != nil && !errors.As(err, &damage) {
		return grants, at, err
	}
	live := grants[:0]
	for _, g := range grants {
		if !removedLine(&g) {
			live = append(live, g)
		}
	}
	clear(grants[len(live):])
	return live, at, err
}

// removedLine reports whether g is a tombstone: the address was removed.
func removedLine(g *Grant) bool { return g.Expires.Equal(tombstone) && !g.Open() }

// readState calls each, in file order, for every grant line of the state
// file at path, its address unmapped; g is the caller's only until each
// returns. A missing file has no lines. The error is a *FileError, a
// *StateDamage once the whole readable file was read, or a read error.
func readState(open openFunc, path string, lim stateLimits, each func(g *Grant)) error {
	f, err := openExisting(open, "state file", path, stateFix)
	if f == nil {
		return err
	}
	defer f.Close()
	var (
		damage = StateDamage{Path: path}
		long   []byte
		read   int64
		g      Grant // one for every line: each takes what it keeps
	)
	r := bufio.NewReaderSize(f, 64<<10)
	for i := 0; ; i++ {
		line, err := r.ReadSlice('\n')
		read += int64(len(line))
		tooLong := false
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) && read <= lim.maxBytes {
				line, err = r.ReadSlice('\n')
				read += int64(len(line))
				if !tooLong && len(long)+len(line) <= maxStateLine {
					long = append(long, line...)
				} else {
					tooLong, long = true, long[:0]
				}
			}
			line = long
		}
		if read > lim.maxBytes {
			damage.StoppedAt = read
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("load state %s: %w", path, err)
		}
		torn := errors.Is(err, io.EOF) && !bytes.HasSuffix(line, []byte("\n"))
		line = bytes.TrimSpace(line)
		if i == 0 && string(line) != stateHeader {
			damage.NoHeader = true
		}
		switch {
		case tooLong:
			damage.LongLines++
		case len(line) == 0 || (i == 0 && string(line) == stateHeader):
		default:
			var jerr error
			g = Grant{}
			if !decodeStateLine(line, &g) {
				g = Grant{}
				jerr = json.Unmarshal(line, &g)
			}
			switch {
			case jerr != nil && torn && i > 0:
			case jerr != nil || !g.Addr.IsValid() || g.Expires.IsZero():
				damage.BadLines++
				if damage.FirstBad == 0 {
					damage.FirstBad = i + 1
				}
			default:
				g.Addr = g.Addr.Unmap()
				each(&g)
			}
		}
		if err != nil {
			break
		}
	}
	if damage.damaged() {
		return &damage
	}
	return nil
}

// tableLoad loads a state file straight into a table at startup, without
// a Grant per address in between: each line inserts, replaces or removes
// its address's slot (Table.restoreLine), and finish then does what
// Table.Restore does with the grants LoadState returns, so the table
// ends up the same, to its order of eviction and expiry.
//
// The addresses the file accounts for (see Service.carryOver) are those
// in the table and those in aside: a removed, expired, ungrantable or
// excluded address, or one evicted by -max-entries. aside is empty in a
// state file as relaygate writes it whole, and its keys hold no pointers,
// so it costs neither the collector nor memory at a million grants.
type tableLoad struct {
	t         *Table
	now       time.Time
	grantable func(netip.Addr) bool

	next     uint32                         // distinct addresses seen so far
	first    []uint32                       // slot → when its address was first seen (next)
	aside    map[[16]byte]asideAddr         // accounted for, not in the table
	sessions map[int32]map[string]time.Time // slot → open sessions, restored by finish
	odd      map[int32]time.Time            // slot → expiry that UnixNano cannot order
	done     bool
}

type asideAddr struct {
	first uint32
	why   asideReason
}

type asideReason uint8

const (
	asideRemoved asideReason = iota + 1
	asideUngrantable
	asideExcluded
	asideExpired
	asideEvicted
)

func newTableLoad(t *Table, grantable func(netip.Addr) bool, now time.Time) *tableLoad {
	return &tableLoad{t: t, now: now, grantable: grantable,
		aside: make(map[[16]byte]asideAddr), sessions: make(map[int32]map[string]time.Time), odd: make(map[int32]time.Time)}
}

// load reads the state file at path into the table; the error is
// readState's. A read error leaves the table as it was.
func (l *tableLoad) load(open openFunc, path string, lim stateLimits) error {
	if l.t.n != 0 {
		// The order of eviction and expiry finish builds assumes the table
		// holds nothing else; a Service loads its state before anything.
		return fmt.Errorf("load state %s: table not empty", path)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		// Room in the index for the lines a file this size holds, as
		// Restore reserves for its grants, so the index is not rehashed a
		// dozen times on the way to a million.
		l.t.reserve(int(min(fi.Size()/128, int64(l.t.maxEntries))))
	}
	err := readState(open, path, lim, func(g *Grant) { l.t.restoreLine(l, g) })
	var damage *StateDamage
	if err != nil && !errors.As(err, &damage) {
		l.abandon()
	}
	return err
}

// why says why g's address is not restored, or 0 if it is. The order is
// that of LoadState, grantableOnly and Restore.
func (l *tableLoad) why(g *Grant) asideReason {
	switch {
	case removedLine(g):
		return asideRemoved
	case !l.grantable(g.Addr):
		return asideUngrantable
	case l.t.Excluded(g.Addr):
		return asideExcluded
	case !g.Open() && !g.Expires.After(l.now):
		return asideExpired
	}
	return 0
}

// forget empties slot i, which restoreLine filled, as if it never had been:
// no tombstone for the next save, no eviction, no change counted.
func (l *tableLoad) forget(i int32) {
	t := l.t
	e := t.at(i)
	t.del(i)
	t.metas.release(e.meta)
	t.users.release(e)
	delete(l.sessions, i)
	delete(l.odd, i)
	*e = entry{next: t.free, gen: e.gen + 1}
	t.free = i
	t.n--
}

// abandon empties the table of what was loaded.
func (l *tableLoad) abandon() {
	l.t.each(func(i int32, _ *entry) { l.forget(i) })
	l.done = true
}

// loadCounts is what a start logs about its state file, in LoadState's
// terms: readable is the grants it would return, ungrantable those
// grantableOnly drops, restorable what reaches Restore after that, and
// restored what Restore adds (an address it then evicts included).
type loadCounts struct {
	readable, ungrantable, restorable, restored int
}

func (l *tableLoad) counts() loadCounts {
	c := loadCounts{restored: l.t.n}
	for _, x := range l.aside {
		switch x.why {
		case asideUngrantable:
			c.ungrantable++
		case asideExcluded, asideExpired:
			c.restorable++
		}
	}
	c.restorable += c.restored
	c.readable = c.restorable + c.ungrantable
	return c
}

// finish does to the loaded slots what Restore does to the grants it is
// given: oldest expiry first (the first seen first among equals, as
// Restore's stable sort keeps LoadState's order), each linked at the back
// of the eviction order with its sessions restored, scheduled and marked
// for the state file; past -max-entries, the front is evicted before each
// one, evictions counted and tombstoned as Restore's are.
func (l *tableLoad) finish() {
	t := l.t
	defer runtime.KeepAlive(t)
	if l.done {
		return
	}
	l.done = true
	type ranked struct {
		key   int64 // expiry, saturated outside UnixNano's range
		first uint32
		slot  int32
	}
	order := make([]ranked, 0, t.n)
	t.each(func(i int32, e *entry) {
		order = append(order, ranked{key: e.queued, first: l.first[i], slot: i})
		e.queued = 0
	})
	slices.SortFunc(order, func(a, b ranked) int {
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		if ea, odd := l.odd[a.slot]; odd {
			if c := ea.Compare(l.odd[b.slot]); c != 0 {
				return c
			}
		}
		return cmp.Compare(a.first, b.first)
	})
	l.first = nil
	for j, r := range order {
		if j >= t.maxEntries && t.head >= 0 {
			evicted := t.at(t.head)
			l.aside[evicted.addr] = asideAddr{why: asideEvicted}
			t.remove(t.head)
			t.evictions++
		}
		t.pushBack(r.slot)
		t.members++
		if ss := l.sessions[r.slot]; len(ss) > 0 {
			t.restoreSessions(r.slot, ss)
		}
		t.schedule(r.slot)
		t.touch(r.slot)
	}
	l.sessions, l.odd = nil, nil
}

// accounted reports whether the state file has a line for a (unmapped):
// it is in the table, or it was set aside.
func (l *tableLoad) accounted(a netip.Addr) bool {
	key := a.As16()
	if _, in := l.t.get(key); in {
		return true
	}
	_, aside := l.aside[key]
	return aside
}

// restoreGrants restores the state file as Restore does, for a table that
// already holds grants, which Restore keeps; the addresses the file
// accounts for are then those it has a line for.
func (s *Service) restoreGrants(grantable func(netip.Addr) bool, now time.Time) (loadCounts, func(netip.Addr) bool, error) {
	grants, at, err := loadState(s.open, s.cfg.StatePath, stateLimitsFor(s.table.maxEntries))
	accounted := func(a netip.Addr) bool { _, ok := at[a]; return ok }
	c := loadCounts{readable: len(grants)}
	var damage *StateDamage
	if err != nil && !errors.As(err, &damage) {
		return c, accounted, err
	}
	grants, c.ungrantable = grantableOnly(grants, grantable)
	c.restorable = len(grants)
	c.restored = s.table.Restore(grants, now)
	return c, accounted, err
}

// grantableOnly drops the grants of a state file whose address can never
// be granted by today's rules (an older relaygate wrote it, or it was
// edited), so a restart cannot publish a key the parsers would refuse.
func grantableOnly(grants []Grant, grantable func(netip.Addr) bool) ([]Grant, int) {
	kept := grants[:0]
	for _, g := range grants {
		if grantable(g.Addr) {
			kept = append(kept, g)
		}
	}
	dropped := len(grants) - len(kept)
	clear(grants[len(kept):])
	return kept, dropped
}
