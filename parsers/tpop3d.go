package parsers

import (
	"errors"
	"net/netip"
	"strings"
)

// tpop3d recognises the line tpop3d's parent process logs when it forks the
// child that serves an authenticated session (fork_child in netloop.c, "a
// message in a known format" for POP-before-SMTP), such as this 1.4 one:
//
//	tpop3d[1234]: fork_child: [7]192.0.2.10/example.org: began session for `alice' with mysql; child PID is 1235
//
// The client id is connection.c's "[fd]address/domain" ("[fd]address"
// without a domain). Later 1.5 builds replace it after authentication with
// "[fd]user(address)" (pop3.c); both are read. The
// "authcontext_new_user_pass: began session for ..." line of the same login
// has no address and is ignored. tpop3d formats addresses with inet_ntoa.
type tpop3d struct{}

// Name implements Parser.
func (tpop3d) Name() string { return "tpop3d" }

// Programs implements Parser.
func (tpop3d) Programs() []string { return []string{"tpop3d"} }

const tpop3dBegan = ": began session for `"

// Parse implements Parser.
func (t tpop3d) Parse(m Message) (Event, error) {
	rest, ok := strings.CutPrefix(m.Text, "fork_child: [")
	if !ok {
		return Event{}, ErrNoMatch
	}
	end := strings.IndexByte(rest, ']')
	if end < 0 || !allDigits(rest[:end]) {
		return Event{}, ErrNoMatch
	}
	rest = rest[end+1:]
	// The line ends in "' with <driver>; child PID is <n>", which tpop3d
	// writes itself, so it is cut from the end: a user name may contain
	// "' with " or "; child PID is ".
	head, pid, ok := cutLast(rest, "; child PID is ")
	if !ok || !allDigits(pid) {
		return Event{}, ErrNoMatch
	}
	head, driver, ok := cutLast(head, "' with ")
	if !ok || driver == "" || strings.ContainsAny(driver, " `'") {
		return Event{}, ErrNoMatch
	}
	// head is "<id>: began session for `<user>", and in 1.5 the id holds
	// the user name too ("[fd]user(address)"), which the client chose and
	// may spell ": began session for `" and "(address)" into. So every
	// place the id can end is tried: the split tpop3d made is among them,
	// and the line grants only if every split that names an address names
	// the same one.
	id, _, ok := strings.Cut(head, tpop3dBegan)
	if !ok {
		return Event{}, ErrNoMatch
	}
	addr := tpop3dIDAddr(id) // the first split's, for the error if none reads
	type reading struct{ addr, user string }
	r, readings, err := readEverySplit(head, tpop3dBegan, func(id, user string) (string, reading, bool) {
		a := tpop3dIDAddr(id)
		_, err := netip.ParseAddr(a)
		return a, reading{a, user}, err == nil
	})
	switch {
	case errors.Is(err, errTooManySplits):
		return Event{}, &AddrError{Addr: addr, Reason: "line can be read in too many ways (user name injection?)"}
	case err != nil:
		return Event{}, &AddrError{Addr: r.addr, Reason: "client id can be read with another address (user name injection?)"}
	case readings > 0:
		addr = r.addr
	}
	a, err := parseAddr(addr)
	if err != nil {
		return Event{}, err
	}
	return Event{Kind: Login, Addr: a, User: r.user, Daemon: t.Name()}, nil
}

// tpop3dIDAddr returns the address text in a client id: "address/domain",
// "address" or "user(address)".
func tpop3dIDAddr(id string) string {
	if strings.HasSuffix(id, ")") {
		// "user(address)": the user part may hold parentheses, the
		// address cannot, so the last "(" opens it.
		open := strings.LastIndexByte(id, '(')
		if open < 0 {
			return id
		}
		return id[open+1 : len(id)-1]
	}
	addr, _, _ := strings.Cut(id, "/")
	return addr
}

// cutLast slices s around the last instance of sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}
