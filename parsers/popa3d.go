package parsers

import "strings"

// popa3d recognises popa3d, which logs a session on two lines of the same
// process when it runs as a standalone daemon (standalone.c, pop_auth.c):
//
//	popa3d[2211]: Session from 192.0.2.10
//	popa3d[2211]: Authentication passed for alice
//
// The first line is a Connect and the second an Auth; a Correlator joins
// them. Under inetd there is no address line at all, so such a session never
// grants. The patch shipped with pop-before-smtp (contrib/popa3d) puts the
// address on the success line, which grants by itself:
//
//	popa3d[2211]: Authentication passed for alice -- [192.0.2.10]
//
// "Authentication failed for <user>" (also "for UNKNOWN USER"), "Didn't
// attempt authentication" and the master's "<addr>: sessions limit reached"
// and "<addr>: per source limit reached" are Fail events. Newer popa3d
// prints the address with getnameinfo, so it may be IPv6 or v4-mapped.
type popa3d struct{}

// Name implements Parser.
func (popa3d) Name() string { return "popa3d" }

// Programs implements Parser.
func (popa3d) Programs() []string { return []string{"popa3d"} }

const (
	popa3dSession = "Session from "
	popa3dPassed  = "Authentication passed for "
	popa3dFailed  = "Authentication failed for "
)

// Parse implements Parser.
func (p popa3d) Parse(m Message) (Event, error) {
	text := m.Text
	switch {
	case strings.HasPrefix(text, popa3dSession):
		a, err := parseAddrToEnd(text[len(popa3dSession):])
		if err != nil {
			return Event{}, err
		}
		return Event{Kind: Connect, Addr: a, Daemon: p.Name()}, nil

	case strings.HasPrefix(text, popa3dPassed):
		// popa3d takes exactly one USER argument and splits arguments on
		// spaces, so the user name is one word; with POP_VIRTUAL it is
		// "user@domain".
		user, tail, patched := strings.Cut(text[len(popa3dPassed):], " ")
		if user == "" {
			return Event{}, ErrNoMatch
		}
		if !patched {
			return Event{Kind: Auth, User: user, Daemon: p.Name()}, nil
		}
		addr, ok := strings.CutPrefix(tail, "-- ")
		if !ok || len(addr) < 2 || addr[0] != '[' || addr[len(addr)-1] != ']' {
			return Event{}, &AddrError{Addr: tail, Reason: "text after the user name is not \"-- [address]\""}
		}
		a, err := parseAddr(addr)
		if err != nil {
			return Event{}, err
		}
		return Event{Kind: Login, Addr: a, User: user, Daemon: p.Name()}, nil

	case strings.HasPrefix(text, popa3dFailed),
		text == "Didn't attempt authentication",
		strings.HasSuffix(text, ": sessions limit reached"),
		strings.HasSuffix(text, ": per source limit reached"):
		return Event{Kind: Fail, Daemon: p.Name()}, nil
	}
	return Event{}, ErrNoMatch
}
