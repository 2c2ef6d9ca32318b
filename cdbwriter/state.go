package cdbwriter

import (
	"bufio"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/relaygate/relaygate/internal/grants"
)

// The state file is JSON lines: a header, then one grant per line. Lines are
// independent, so a truncated or damaged file still yields every grant that
// can be read instead of none.
//
// Between two rewrites of the whole file, changes are appended: a later line
// for an address replaces the earlier ones, and a line whose expiry is the
// Unix epoch says the address was removed (tombstone). A file without
// repeated addresses, such as every file written before appending, reads as
// it always did.
const stateHeader = `{"relaygate_state":1}`

// tombstone marks a removed address: an expiry no grant can have.
var tombstone = time.Unix(0, 0).UTC()

// SaveState atomically replaces the state file at path with gs.
func SaveState(path string, gs []grants.Grant) error {
	return saveState(path, func(w *bufio.Writer, line []byte) ([]byte, error) {
		for _, g := range gs {
			keys := slices.Sorted(maps.Keys(g.Sessions))
			ss := make([]grants.OpenSession, len(keys))
			for i, k := range keys {
				ss[i] = grants.OpenSession{Key: k, Opened: g.Sessions[k]}
			}
			line = appendStateLine(line[:0], g.Addr, g.Expires, g.User, g.Daemon, g.Host, ss)
			if _, err := w.Write(line); err != nil {
				return line, err
			}
		}
		return line, nil
	})
}

// saveTable is SaveState for every grant in t, without copying them out.
// Times are written in UTC.
//
// removed are addresses that are no longer in t but may still be in the
// published map (see Service.unpublishedRemovals): each gets a tombstone,
// so that a restart does not take them for grants the state lost and
// carry them over from the map.
func saveTable(path string, t *grants.Table, removed []netip.Addr) error {
	return saveState(path, func(w *bufio.Writer, line []byte) ([]byte, error) {
		var err error
		t.Each(func(r *grants.Record) {
			if err == nil {
				line = appendRecordLine(line[:0], r)
				_, err = w.Write(line)
			}
		})
		for _, a := range removed {
			if err != nil {
				break
			}
			line = appendTombstone(line[:0], a)
			_, err = w.Write(line)
		}
		return line, err
	})
}

// appendRecordLine appends r's state line.
func appendRecordLine(b []byte, r *grants.Record) []byte {
	return appendStateLine(b, r.Addr, r.Expires, r.User, r.Daemon, r.Host, r.Sessions)
}

// appendTombstone appends the line that says a was removed.
func appendTombstone(b []byte, a netip.Addr) []byte {
	return appendStateLine(b, a, tombstone, "", "", "", nil)
}

func saveState(path string, fill func(w *bufio.Writer, line []byte) ([]byte, error)) error {
	err := writeAtomic(path, 0o600, func(f *os.File) error {
		return bufferedFile(f, func(w *bufio.Writer) error {
			w.WriteString(stateHeader)
			w.WriteByte('\n')
			_, err := fill(w, make([]byte, 0, 256))
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("save state %s: %w", path, err)
	}
	return nil
}

// appendStateLine appends one grant's line, byte for byte what a
// json.Encoder writes for the grants.Grant (HTML-safe escaping, sessions sorted by
// key, a trailing newline), without reflection: at a million grants the
// state is rewritten with every map publish.
func appendStateLine[U string | []byte](b []byte, addr netip.Addr, expires time.Time, user U, daemon, host string, sessions []grants.OpenSession) []byte {
	b = append(b, `{"addr":"`...)
	if addr.IsValid() {
		b = addr.AppendTo(b)
	}
	b = append(b, `","expires":"`...)
	b = expires.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if len(user) > 0 {
		b = append(b, `,"user":`...)
		b = appendJSONString(b, user)
	}
	for _, f := range [...]struct{ name, value string }{{"daemon", daemon}, {"host", host}} {
		if f.value != "" {
			b = append(b, `,"`...)
			b = append(b, f.name...)
			b = append(b, `":`...)
			b = appendJSONString(b, f.value)
		}
	}
	if len(sessions) > 0 {
		b = append(b, `,"sessions":{`...)
		for i, s := range sessions {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s.Key)
			b = append(b, `:"`...)
			b = s.Opened.AppendFormat(b, time.RFC3339Nano)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	return append(b, "}\n"...)
}

// appendJSONString quotes s as encoding/json does with HTML escaping on:
// invalid UTF-8 becomes U+FFFD, and <, >, &, U+2028 and U+2029 are
// escaped, so a state line is safe wherever it is pasted.
func appendJSONString[S string | []byte](b []byte, s S) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := decodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// decodeRune is utf8.DecodeRune for either kind of text, without copying.
func decodeRune[S string | []byte](s S) (rune, int) {
	switch v := any(s).(type) {
	case string:
		return utf8.DecodeRuneInString(v)
	case []byte:
		return utf8.DecodeRune(v)
	}
	return utf8.RuneError, 1
}
