package cdbwriter

import (
	"bytes"
	"time"
	"unicode/utf8"

	"github.com/relaygate/relaygate/internal/grants"
)

// decodeStateLine reads a state line in exactly the form appendStateLine
// writes (and encoding/json wrote before it): the fields in their order, no
// spaces, strings without escapes. It returns false for anything else, and
// the caller hands the line to encoding/json, which has the last word; a
// fuzz test holds the two to the same result. It exists because
// encoding/json took 6 of the 8.5 seconds a restart with a million grants
// spent before it could publish the map.
func decodeStateLine(line []byte, g *grants.Grant) bool {
	d := stateDecoder{rest: line}
	if !d.literal(`{"addr":"`) {
		return false
	}
	if s, ok := d.raw(); !ok || g.Addr.UnmarshalText(s) != nil {
		return false
	}
	if !d.literal(`,"expires":"`) {
		return false
	}
	if s, ok := d.raw(); !ok || g.Expires.UnmarshalText(s) != nil {
		return false
	}
	for _, f := range [...]struct {
		key string
		to  *string
	}{{`,"user":"`, &g.User}, {`,"daemon":"`, &g.Daemon}, {`,"host":"`, &g.Host}} {
		if d.literal(f.key) {
			s, ok := d.raw()
			if !ok {
				return false
			}
			*f.to = string(s)
		}
	}
	if d.literal(`,"sessions":{`) {
		g.Sessions = map[string]time.Time{}
		for first := true; !d.literal("}"); first = false {
			if !first && !d.literal(",") {
				return false
			}
			if !d.literal(`"`) {
				return false
			}
			key, ok := d.raw()
			if !ok || !d.literal(`:"`) {
				return false
			}
			at, ok := d.raw()
			var opened time.Time
			if !ok || opened.UnmarshalText(at) != nil {
				return false
			}
			g.Sessions[string(key)] = opened
		}
	}
	return d.literal("}") && len(d.rest) == 0
}

type stateDecoder struct{ rest []byte }

// literal consumes s if the input continues with it.
func (d *stateDecoder) literal(s string) bool {
	if len(d.rest) < len(s) || string(d.rest[:len(s)]) != s {
		return false
	}
	d.rest = d.rest[len(s):]
	return true
}

// raw consumes the rest of a JSON string whose opening quote is already
// consumed, and returns its text. It refuses what encoding/json would
// read differently from the bytes as they stand: escapes, control
// characters and invalid UTF-8.
func (d *stateDecoder) raw() ([]byte, bool) {
	end := bytes.IndexByte(d.rest, '"')
	if end < 0 {
		return nil, false
	}
	s := d.rest[:end]
	for _, c := range s {
		if c < 0x20 || c == '\\' {
			return nil, false
		}
	}
	if !utf8.Valid(s) {
		return nil, false
	}
	d.rest = d.rest[end+1:]
	return s, true
}
