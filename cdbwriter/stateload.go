package cdbwriter

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"syscall"
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
func loadState(open openFunc, path string, lim stateLimits) ([]Grant, map[netip.Addr]int, error) {
	f, err := openExisting(open, "state file", path, stateFix)
	if f == nil {
		return nil, nil, err
	}
	defer f.Close()
	var (
		grants []Grant
		at     = make(map[netip.Addr]int) // address → its index in grants
		damage = StateDamage{Path: path}
		long   []byte
		read   int64
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
			return grants, at, fmt.Errorf("load state %s: %w", path, err)
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
			var g Grant
			var jerr error
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
				if j, ok := at[g.Addr]; ok {
					grants[j] = g
				} else {
					at[g.Addr] = len(grants)
					grants = append(grants, g)
				}
			}
		}
		if err != nil {
			break
		}
	}
	live := grants[:0]
	for _, g := range grants {
		if !g.Expires.Equal(tombstone) || g.Open() {
			live = append(live, g)
		}
	}
	clear(grants[len(live):])
	if damage.damaged() {
		return live, at, &damage
	}
	return live, at, nil
}
