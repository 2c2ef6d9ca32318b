package cdbwriter

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
)

// The state file doubles as a journal: between two whole rewrites, the
// changes of the last SyncInterval (a login, a logout, a repeat login that
// only moved the expiry, a removal) are appended as ordinary state lines and
// synced as one group. LoadState needs nothing new to read them: the last
// line of an address wins, a tombstone removes it, and a final line a crash
// cut short is not damage.

// errStateTorn says an append may have left the state file in a state
// appending cannot build on (a failed sync: which of the written pages
// reached the disk is unknown), so only a whole new file may follow.
var errStateTorn = errors.New("the file may end in an unsynced or partial line")

// appendState appends to the state file at path a line for every grant
// changed and a tombstone for every grant removed since the last save, and
// syncs the data: O(changes) instead of O(grants), so a million grants do
// not mean rewriting 100 MB ten times a second. It returns the lines
// appended.
//
// A failed write (a full disk) is cut back off, so the file ends where the
// last good sync left it and the same changes can be appended again later.
// When that is not certain the error wraps errStateTorn.
func appendState(path string, t *Table) (n int, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return 0, fmt.Errorf("append state %s: %w", path, err)
	}
	defer func() {
		// After a successful data sync the close cannot lose anything.
		_ = f.Close()
	}()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("append state %s: %w", path, err)
	}
	end := fi.Size()
	w := bufio.NewWriterSize(f, 64<<10)
	line := make([]byte, 0, 256)
	var ss []stateSession
	t.eachUnsaved(func(i int32, e *entry) {
		line, ss = appendEntryLine(line[:0], t, i, e, ss)
		w.Write(line) // a write error sticks in w; Flush returns it
		n++
	}, func(a netip.Addr) {
		line = appendTombstone(line[:0], a)
		w.Write(line)
		n++
	})
	if err = w.Flush(); err != nil {
		if terr := f.Truncate(end); terr != nil {
			return 0, fmt.Errorf("append state %s: %w (and cutting it back: %v): %w", path, err, terr, errStateTorn)
		}
		return 0, fmt.Errorf("append state %s: %w", path, err)
	}
	if err = syncData(f); err != nil {
		return 0, fmt.Errorf("append state %s: sync: %w: %w", path, err, errStateTorn)
	}
	return n, nil
}
