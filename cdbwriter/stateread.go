package cdbwriter

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/relaygate/relaygate/internal/grants"
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
func LoadState(path string) ([]grants.Grant, error) {
	grants, _, err := loadState(os.OpenFile, path, stateLimits{maxBytes: defaultStateBytes})
	return grants, err
}

// loadState is LoadState that also returns every address the file has a
// line for (live, expired or removed): the addresses it accounts for.
// relaygate list reads it; a start loads the file straight into its table
// instead (loadTable).
func loadState(open openFunc, path string, lim stateLimits) ([]grants.Grant, map[netip.Addr]int, error) {
	var (
		gs []grants.Grant
		at = make(map[netip.Addr]int) // address → its index in gs
	)
	err := readState(open, path, lim, func(g *grants.Grant) {
		if j, ok := at[g.Addr]; ok {
			gs[j] = *g
		} else {
			at[g.Addr] = len(gs)
			gs = append(gs, *g)
		}
	})
	var damage *StateDamage
	if err != nil && !errors.As(err, &damage) {
		return gs, at, err
	}
	live := gs[:0]
	for _, g := range gs {
		if !removedLine(&g) {
			live = append(live, g)
		}
	}
	clear(gs[len(live):])
	return live, at, err
}

// removedLine reports whether g is a tombstone: the address was removed.
func removedLine(g *grants.Grant) bool { return g.Expires.Equal(tombstone) && !g.Open() }

// readState calls each, in file order, for every grant line of the state
// file at path, its address unmapped; g is the caller's only until each
// returns. A missing file has no lines. The error is a *FileError, a
// *StateDamage once the whole readable file was read, or a read error.
func readState(open openFunc, path string, lim stateLimits, each func(g *grants.Grant)) error {
	f, err := openExisting(open, "state file", path, stateFix)
	if f == nil {
		return err
	}
	defer f.Close()
	var (
		damage = StateDamage{Path: path}
		long   []byte
		read   int64
		g      grants.Grant // one for every line: each takes what it keeps
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
			g = grants.Grant{}
			if !decodeStateLine(line, &g) {
				g = grants.Grant{}
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
