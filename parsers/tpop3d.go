package parsers

import "strings"

// Tpop3d recognises the line tpop3d's parent process logs when it forks the
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
type Tpop3d struct{}

// Name implements Parser.
func (Tpop3d) Name() string { return "tpop3d" }

// Programs implements Parser.
func (Tpop3d) Programs() []string { return []string{"tpop3d"} }

const tpop3dBegan = ": began session for `"

// Parse implements Parser.
func (t Tpop3d) Parse(m Message) (Event, error) {
	rest, ok := strings.CutPrefix(m.Text, "fork_child: [")
	if !ok {
		return Event{}, ErrNoMatch
	}
	end := strings.IndexByte(rest, ']')
	if end < 0 || !allDigits(rest[:end]) {
		return Event{}, ErrNoMatch
	}
	rest = rest[end+1:]
	// The client id comes before anything the client typed, and tpop3d
	// splits commands at white space, so the first ": began session for `"
	// ends it.
	i := strings.Index(rest, tpop3dBegan)
	if i < 0 {
		return Event{}, ErrNoMatch
	}
	id, tail := rest[:i], rest[i+len(tpop3dBegan):]
	j := strings.Index(tail, "' with ")
	if j < 0 || !strings.Contains(tail[j:], "; child PID is ") {
		return Event{}, ErrNoMatch
	}
	user := tail[:j]

	var addr string
	if strings.HasSuffix(id, ")") {
		// "[fd]user(address)": the user part may hold parentheses, the
		// address cannot, so the last "(" opens it.
		open := strings.LastIndexByte(id, '(')
		if open < 0 {
			return Event{}, &AddrError{Addr: id, Reason: "tpop3d client id has no (address)"}
		}
		addr = id[open+1 : len(id)-1]
	} else {
		addr, _, _ = strings.Cut(id, "/")
	}
	a, err := ParseAddr(addr)
	if err != nil {
		return Event{}, err
	}
	return Event{Kind: Login, Addr: a, User: user, Daemon: t.Name()}, nil
}
