package syslogmsg

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// SDElement is one RFC 5424 SD-ELEMENT with its values unescaped.
type SDElement struct {
	ID     string
	Params []SDParam // in message order; RFC 5424 lets a PARAM-NAME repeat
}

// SDParam is one SD-PARAM.
type SDParam struct {
	Name, Value string
}

// Limits of RFC 5424 section 6.3: SD-NAME is 1*32 PRINTUSASCII.
const sdNameMax = 32

var errBadSD = errors.New("malformed RFC 5424 STRUCTURED-DATA")

// scanSD reads the STRUCTURED-DATA that starts at raw[i] and returns the
// index just after it. It is the one place that decides where SD ends and
// MSG begins, so it is strict: anything RFC 5424 section 6.3 does not allow
// (an unescaped '"' or ']' in a value, a missing quote, a bad SD-NAME,
// invalid UTF-8 in a value, a repeated SD-ID, nothing after '[') refuses the
// whole message rather than guessing where MSG starts. The one leniency is
// the one the RFC demands: a backslash before anything but '"', '\' or ']'
// is an ordinary character (section 6.3.3).
//
// It runs in one pass without allocating for up to sdSmallIDs elements.
func scanSD[T string | []byte](raw T, i int) (int, bool) {
	if i >= len(raw) {
		return 0, false
	}
	if raw[i] == '-' {
		return i + 1, true
	}
	if raw[i] != '[' {
		return 0, false
	}
	var small [sdSmallIDs][2]int
	var many map[string]struct{}
	n := 0
	for i < len(raw) && raw[i] == '[' {
		id0 := i + 1
		id1, ok := scanSDName(raw, id0)
		if !ok {
			return 0, false
		}
		// SD-ID MUST NOT repeat (section 6.3.2): a receiver that keeps the
		// first and one that keeps the last would read different data.
		if n < sdSmallIDs {
			for _, s := range small[:n] {
				if string(raw[s[0]:s[1]]) == string(raw[id0:id1]) {
					return 0, false
				}
			}
			small[n] = [2]int{id0, id1}
		} else {
			if many == nil {
				many = make(map[string]struct{}, 2*sdSmallIDs)
				for _, s := range small {
					many[string(raw[s[0]:s[1]])] = struct{}{}
				}
			}
			if _, dup := many[string(raw[id0:id1])]; dup {
				return 0, false
			}
			many[string(raw[id0:id1])] = struct{}{}
		}
		n++
		i = id1
		for i < len(raw) && raw[i] == ' ' {
			i, ok = scanSDParam(raw, i+1)
			if !ok {
				return 0, false
			}
		}
		if i >= len(raw) || raw[i] != ']' {
			return 0, false
		}
		i++
	}
	return i, true
}

// sdSmallIDs elements are checked for a repeated SD-ID on the stack; real
// senders add one to three.
const sdSmallIDs = 8

// scanSDName reads an SD-NAME (SD-ID or PARAM-NAME) at raw[i]: 1 to 32
// printable US-ASCII characters other than '=', ' ', ']' and '"'.
func scanSDName[T string | []byte](raw T, i int) (int, bool) {
	start := i
	for i < len(raw) && i-start <= sdNameMax {
		c := raw[i]
		if c <= ' ' || c > '~' || c == '=' || c == ']' || c == '"' {
			break
		}
		i++
	}
	n := i - start
	return i, n >= 1 && n <= sdNameMax
}

// sdEscaped reports whether a backslash before c escapes it (section
// 6.3.3); before anything else the backslash is an ordinary character.
func sdEscaped(c byte) bool { return c == '"' || c == '\\' || c == ']' }

// scanSDParam reads PARAM-NAME "=" '"' PARAM-VALUE '"' at raw[i].
func scanSDParam[T string | []byte](raw T, i int) (int, bool) {
	i, ok := scanSDName(raw, i)
	if !ok || i+1 >= len(raw) || raw[i] != '=' || raw[i+1] != '"' {
		return 0, false
	}
	i += 2
	start := i
	ascii := true
	for i < len(raw) {
		switch c := raw[i]; {
		case c == '"':
			if !ascii && !utf8.ValidString(string(raw[start:i])) {
				return 0, false
			}
			return i + 1, true
		case c == ']':
			// Section 6.3.3: ']' MUST be escaped. Readers that end the
			// element here would see a different MSG.
			return 0, false
		case c == '\\':
			// An escape takes the next byte whatever it is; "\x" stays two
			// ordinary characters, which reading x next does as well.
			if i+1 < len(raw) && sdEscaped(raw[i+1]) {
				i++
			}
		case c >= utf8.RuneSelf:
			ascii = false
		}
		i++
	}
	return 0, false
}

// ParseStructuredData decodes an Envelope's SD (the STRUCTURED-DATA of an
// RFC 5424 message as it was on the wire, "" for NILVALUE) into its elements
// with the values unescaped. It accepts exactly what the envelope split
// accepts, so an element it returns is one the sender wrote, never text
// that came from MSG or from inside another value.
func ParseStructuredData(sd string) ([]SDElement, error) {
	if sd == "" || sd == "-" {
		return nil, nil
	}
	if end, ok := scanSD(sd, 0); !ok || end != len(sd) {
		return nil, fmt.Errorf("%w: %q", errBadSD, truncate(sd, 80))
	}
	var elems []SDElement
	i := 0
	for i < len(sd) {
		// Valid by scanSD: '[' ID *(' ' NAME '="' VALUE '"') ']'.
		idEnd, _ := scanSDName(sd, i+1)
		el := SDElement{ID: sd[i+1 : idEnd]}
		i = idEnd
		for sd[i] == ' ' {
			nameEnd, _ := scanSDName(sd, i+1)
			name := sd[i+1 : nameEnd]
			v0 := nameEnd + 2
			var b strings.Builder
			j := v0
			for sd[j] != '"' {
				if sd[j] == '\\' && sdEscaped(sd[j+1]) {
					j++
				}
				b.WriteByte(sd[j])
				j++
			}
			el.Params = append(el.Params, SDParam{Name: name, Value: b.String()})
			i = j + 1
		}
		elems = append(elems, el)
		i++ // ']'
	}
	return elems, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
