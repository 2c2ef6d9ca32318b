package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/relaygate/relaygate/parsers"
)

// Kind says why an event was published. A follower applies every kind the
// same way, as a login at At without a session (see doc.go, "Sessions"):
// the kinds are for people reading the stream and for the counters.
type Kind uint8

const (
	_ Kind = iota
	// KindLogin is a login this relaygate accepted.
	KindLogin
	// KindRefresh says the holder still has a session open for Addr at At.
	KindRefresh
	// KindEnd says the holder's last session for Addr closed: its grant
	// runs for grace from At.
	KindEnd
)

var kindNames = [...]string{KindLogin: "login", KindRefresh: "refresh", KindEnd: "end"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "unknown"
}

// Event is one grant event on the stream: Addr may relay for grace from
// At, by whichever relaygate applies it (each with its own grace,
// exclusions and table). User, Daemon and Host say who logged in, for the
// follower's log lines and `relaygate status`.
type Event struct {
	Kind   Kind
	Addr   netip.Addr
	User   string
	Daemon string
	Host   string
	At     time.Time
}

// Limits of a decoded event. An event from the stream is untrusted input:
// anything outside them is refused, never cut to fit.
const (
	// MaxEventBytes bounds an encoded event; the stream is created with
	// it as its message size limit.
	MaxEventBytes = 2048
	maxUser       = 256
	maxName       = 255 // daemon, host
	wireVersion   = 1
)

// earliest and latest bound At: a relaygate's clock in a sane century.
var (
	earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	latest   = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Encode returns the event's wire form, a JSON object:
//
//	{"v":1,"k":"login","a":"192.0.2.10","u":"alice","d":"dovecot","h":"pop1","t":1765000000123456789}
//
// t is Unix nanoseconds. Empty u, d, h are left out.
func (e Event) Encode() []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"v":1,"k":`...)
	b = strconv.AppendQuote(b, e.Kind.String())
	b = append(b, `,"a":"`...)
	b = e.Addr.Unmap().AppendTo(b)
	b = append(b, '"')
	for _, f := range [...]struct{ k, v string }{{"u", e.User}, {"d", e.Daemon}, {"h", e.Host}} {
		if f.v != "" {
			b = append(b, `,"`...)
			b = append(b, f.k...)
			b = append(b, `":`...)
			b = appendJSONString(b, f.v)
		}
	}
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, e.At.UnixNano(), 10)
	return append(b, '}')
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// Decode's errors.
var (
	errSize    = errors.New("event too large")
	errSyntax  = errors.New("not a JSON object of the event's fields")
	errField   = errors.New("unknown, repeated or missing field")
	errVersion = errors.New("unknown event version")
	errKind    = errors.New("unknown event kind")
	errAddr    = errors.New("address is not one relaygate ever grants")
	errText    = errors.New("user, daemon or host too long or not printable")
	errTime    = errors.New("time out of range")
)

// Decode reads an event published by a relaygate. It is strict: exactly
// the fields Encode writes (u, d and h optional), each once, of the right
// type, the address one relaygate could grant (parsers.Grantable: never
// unspecified, multicast, broadcast, link-local, zoned, …), the texts
// bounded and printable, the time in range. Anything else is an error and
// grants nothing.
func Decode(b []byte) (Event, error) {
	var e Event
	if len(b) > MaxEventBytes {
		return e, errSize
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return e, errSyntax
	}
	var seen uint8
	const (
		fV = 1 << iota
		fK
		fA
		fU
		fD
		fH
		fT
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return e, errSyntax
		}
		key, _ := tok.(string)
		var bit uint8
		switch key {
		case "v":
			bit = fV
		case "k":
			bit = fK
		case "a":
			bit = fA
		case "u":
			bit = fU
		case "d":
			bit = fD
		case "h":
			bit = fH
		case "t":
			bit = fT
		default:
			return e, errField
		}
		if seen&bit != 0 {
			return e, errField
		}
		seen |= bit
		val, err := dec.Token()
		if err != nil {
			return e, errSyntax
		}
		switch bit {
		case fV, fT:
			n, ok := val.(json.Number)
			if !ok {
				return e, errSyntax
			}
			i, err := strconv.ParseInt(string(n), 10, 64)
			if err != nil {
				return e, errSyntax
			}
			if bit == fV {
				if i != wireVersion {
					return e, errVersion
				}
				continue
			}
			e.At = time.Unix(0, i)
			if e.At.Before(earliest) || !e.At.Before(latest) {
				return e, errTime
			}
		default:
			s, ok := val.(string)
			if !ok {
				return e, errSyntax
			}
			switch bit {
			case fK:
				switch s {
				case "login":
					e.Kind = KindLogin
				case "refresh":
					e.Kind = KindRefresh
				case "end":
					e.Kind = KindEnd
				default:
					return e, errKind
				}
			case fA:
				a, err := netip.ParseAddr(s)
				if err != nil || !parsers.Grantable(a) {
					return e, errAddr
				}
				e.Addr = a.Unmap()
			case fU:
				if !printable(s, maxUser) {
					return e, errText
				}
				e.User = s
			case fD:
				if !printable(s, maxName) {
					return e, errText
				}
				e.Daemon = s
			case fH:
				if !printable(s, maxName) {
					return e, errText
				}
				e.Host = s
			}
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return Event{}, errSyntax
	}
	if _, err := dec.Token(); err != io.EOF {
		return Event{}, errSyntax // anything after the object
	}
	if seen&(fV|fK|fA|fT) != fV|fK|fA|fT {
		return Event{}, errField
	}
	return e, nil
}

// printable: valid UTF-8 of at most max bytes without control characters.
func printable(s string, max int) bool {
	if len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

// String is the event for log lines.
func (e Event) String() string {
	return fmt.Sprintf("%s %s user=%q daemon=%q host=%q at=%s", e.Kind, e.Addr, e.User, e.Daemon, e.Host, e.At.UTC().Format(time.RFC3339Nano))
}
