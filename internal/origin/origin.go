// Package origin decides whether a login line was written by the mail
// daemon itself. Where the log path carries the kernel's view of the
// writer (the journal's trusted fields, or rsyslog's imuxsock trusted
// properties forwarded in an RFC 5424 STRUCTURED-DATA element), a line
// written by a login user with logger(1) can be told from one written by
// Dovecot, and refused.
//
// The package is pure: the receiver and the journal reader build a Claim
// for each message, the daemon asks a Policy about the claim and the
// parser's daemon name. No clock, no logging, no I/O except loading files.
package origin

import (
	"fmt"
	"strconv"
	"strings"
)

// Origin is who wrote a line, as the kernel saw it. A numeric field is -1
// and a string field empty when the log path did not carry it.
type Origin struct {
	UID, GID, PID int64
	Comm          string // the process name (journal _COMM, rsyslog $!appname)
	Exe           string // the executable's path (journal _EXE, rsyslog $!exe)
	Unit          string // the systemd unit (journal _SYSTEMD_UNIT); empty elsewhere
}

// Unknown is an Origin that carries nothing.
var Unknown = Origin{UID: -1, GID: -1, PID: -1}

// State says what a message told about its origin.
type State uint8

const (
	// None: the message carries no origin (plain syslog, an untouched
	// rsyslog template). Judged as before under -origin verify.
	None State = iota
	// Verified: the origin comes from the kernel through a path relaygate
	// trusts (the journal, or an origin element from a trusted sender).
	Verified
	// Untrusted: an origin element from a sender not trusted to add one.
	Untrusted
	// Malformed: an origin element that is not well formed.
	Malformed
	// InText: the message's own text carries something shaped like an
	// origin element, which only a forger writes.
	InText
)

var stateNames = [...]string{None: "none", Verified: "verified", Untrusted: "untrusted", Malformed: "malformed", InText: "in_text"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Claim is what one message says about its writer. The zero Claim says
// nothing (None); a Verified claim is made only by Verify, so no literal can
// vouch for a writer by accident (the zero Origin would read as root).
type Claim struct {
	state  State
	origin Origin
}

// State says what kind of claim this is.
func (c Claim) State() State { return c.state }

// Origin is the verified writer; Unknown unless State is Verified.
func (c Claim) Origin() Origin {
	if c.state != Verified {
		return Unknown
	}
	return c.origin
}

// Verify makes the claim of a line whose writer the kernel vouched for, on
// a path relaygate trusts. An origin without a uid proves nothing and
// makes a Malformed claim.
func Verify(o Origin) Claim {
	if o.UID < 0 {
		return Claim{state: Malformed}
	}
	return Claim{state: Verified, origin: o}
}

// Refuse makes a claim of state s that vouches for nobody (Untrusted,
// Malformed, InText, or None).
func Refuse(s State) Claim {
	if s == Verified {
		s = Malformed
	}
	return Claim{state: s}
}

// String renders an origin for logs: only fields that are known.
func (o Origin) String() string {
	var b strings.Builder
	add := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(v))
	}
	for _, f := range []struct {
		k string
		v int64
	}{{"uid", o.UID}, {"gid", o.GID}, {"pid", o.PID}} {
		if f.v >= 0 {
			add(f.k, strconv.FormatInt(f.v, 10))
		}
	}
	for _, f := range [][2]string{{"comm", o.Comm}, {"exe", o.Exe}, {"unit", o.Unit}} {
		if f[1] != "" {
			add(f[0], f[1])
		}
	}
	return b.String()
}

// parseID reads a uid, gid or pid: decimal, no sign, at most 10 digits
// (Linux ids are 32-bit). Empty means not carried.
func parseID(name, s string) (int64, error) {
	if s == "" {
		return -1, nil
	}
	if len(s) > 10 {
		return 0, fmt.Errorf("%s %q: too long", name, s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%s %q: not a decimal number", name, s)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > 1<<32-1 {
		return 0, fmt.Errorf("%s %q: out of range", name, s)
	}
	return n, nil
}
