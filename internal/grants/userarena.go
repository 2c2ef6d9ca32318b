package grants

import (
	"unicode/utf8"

	"github.com/relaygate/relaygate/internal/grants/offheap"
)

// maxUserLen bounds the user name a grant keeps (it is only shown, in the
// log, the state file and /grants): a real one is far shorter, and the
// bound keeps a flood of hostile names from growing the arena.
const maxUserLen = 256

// userArena holds every grant's user name back to back in blocks of
// arenaBlock bytes outside the Go heap; a slot names its own by offset and
// length. A string per grant would be an allocation and a pointer in every
// slot, and one growing slice would hold its old copy each time it grew.
// Names a slot no longer uses are dead bytes, reclaimed by copying the live
// ones to new blocks once the dead outweigh them.
type userArena struct {
	blocks [][]byte // each filled from the front; the last one is being filled
	live   int
	dead   int
}

// arenaBlockBits sizes the arena's blocks, 1 MiB: an offset is the block
// number and the position in it, so 4 GiB of names at most, as before.
const arenaBlockBits = 20

const arenaBlock = 1 << arenaBlockBits

// of returns e's user name. The bytes are in the arena's mapped memory,
// which a compaction (any set) unmaps: copy them before anything can call
// set, and never keep them (a Grant, a log field) without copying.
func (u *userArena) of(e *entry) []byte {
	if e.userLen == 0 {
		return nil
	}
	off := e.userOff & (arenaBlock - 1)
	return u.blocks[e.userOff>>arenaBlockBits][off : off+uint32(e.userLen)]
}

// release marks e's name dead.
func (u *userArena) release(e *entry) {
	u.dead += int(e.userLen)
	u.live -= int(e.userLen)
	e.userOff, e.userLen = 0, 0
}

// set gives e the name user, cut to maxUserLen at a character boundary.
func (u *userArena) set(t *Table, e *entry, user string) {
	u.release(e)
	if len(user) > maxUserLen {
		n := maxUserLen
		for n > 0 && !utf8.RuneStart(user[n]) {
			n--
		}
		user = user[:n]
	}
	if user == "" {
		return
	}
	if u.dead > 64<<10 && u.dead > u.live {
		u.compact(t)
	}
	if add(u, t.mem, e, user) {
		u.live += len(user)
	}
	// Otherwise only reachable with a table of many millions of grants,
	// all with long names: the name is dropped, the grant is not.
}

// add appends name to the last block, or to a new one, for e. It reports
// false if the arena is at its 4 GiB bound.
func add[S string | []byte](u *userArena, mem *offheap.Memory, e *entry, name S) bool {
	last := len(u.blocks) - 1
	if last < 0 || len(u.blocks[last])+len(name) > arenaBlock {
		if len(u.blocks) == 1<<(32-arenaBlockBits) {
			return false
		}
		u.blocks = append(u.blocks, offheap.Slice[byte](mem, arenaBlock)[:0])
		last++
	}
	e.userOff = uint32(last)<<arenaBlockBits | uint32(len(u.blocks[last]))
	e.userLen = uint16(len(name))
	u.blocks[last] = append(u.blocks[last], name...)
	return true
}

// compact copies the live names to new blocks and frees the old ones.
func (u *userArena) compact(t *Table) {
	old := u.blocks
	u.blocks = nil
	t.each(func(_ int32, e *entry) {
		if e.userLen == 0 {
			return
		}
		off := e.userOff & (arenaBlock - 1)
		add(u, t.mem, e, old[e.userOff>>arenaBlockBits][off:off+uint32(e.userLen)])
	})
	// No slice header the collector scans may point at an unmapped block:
	// should the Go heap later get that address, it would be a bad pointer.
	for i, b := range old {
		old[i] = nil
		offheap.Free(t.mem, b)
	}
	u.dead = 0
}
