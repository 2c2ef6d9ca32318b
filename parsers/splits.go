package parsers

import (
	"errors"
	"strings"
)

// maxSplits bounds the places a line is split at (a real line has one or
// two), so that a line built of many separators costs linear time.
const maxSplits = 16

var (
	errTooManySplits  = errors.New("too many readings")
	errSplitsDisagree = errors.New("readings disagree")
)

// readEverySplit reads s split at each place sep occurs, for the lines
// where a daemon writes a client-chosen string (a user name) next to its
// own separator without escaping it: the split the daemon made is among
// them, but so is any the user spelled. read parses one split and returns
// what must be the same in every reading (an address, a session id) and
// the value to keep; it reports false for a split that does not parse.
// The result is the first reading, and how many splits parsed; if two of
// them disagree on the key, errSplitsDisagree, and beyond maxSplits,
// errTooManySplits.
func readEverySplit[V any](s, sep string, read func(before, after string) (key string, v V, ok bool)) (first V, readings int, err error) {
	var firstKey string
	for off, n := 0, 0; ; n++ {
		i := strings.Index(s[off:], sep)
		if i < 0 {
			return first, readings, nil
		}
		if n == maxSplits {
			return first, readings, errTooManySplits
		}
		i += off
		off = i + 1
		key, v, ok := read(s[:i], s[i+len(sep):])
		if !ok {
			continue
		}
		if readings == 0 {
			first, firstKey = v, key
		} else if key != firstKey {
			return first, readings, errSplitsDisagree
		}
		readings++
	}
}
