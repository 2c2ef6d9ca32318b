package parsers

import "strings"

// teapop recognises the login line of teapop 0.3.x (pop_auth.c), such as
//
//	teapop[17844]: Successful login for alice@example.org [203.0.113.5] from client.example.net [192.0.2.10]
//
// The fields are user[@domain], the server's own address (teapop picks the
// virtual domain by it), the client's resolved name ("unknown" without
// reverse DNS) and the client's address. Only the last [...] is the client:
// granting the first would open the relay to the mail server itself. A
// teapop started with -S (SSL mode) logs under the tag teapop_ssl.
type teapop struct{}

// Name implements Parser.
func (teapop) Name() string { return "teapop" }

// Programs implements Parser.
func (teapop) Programs() []string { return []string{"teapop", "teapop_ssl"} }

// Parse implements Parser.
func (t teapop) Parse(m Message) (Event, error) {
	// "Failed login for ..." and "Three failed login attempts from ..." are
	// the other lines with addresses.
	rest, ok := strings.CutPrefix(m.Text, "Successful login for ")
	if !ok {
		return Event{}, ErrNoMatch
	}
	// The line is read from the right: everything after the user name is
	// written by teapop, so a user name cannot move the last bracket.
	open := strings.LastIndexByte(rest, '[')
	if open < 0 || !strings.HasSuffix(rest, "]") {
		return Event{}, &AddrError{Addr: rest, Reason: "login line does not end in [client address]"}
	}
	const noFrom = `login line has no "from host [address]" (a lone [...] is the server's address)`
	addr, head := rest[open+1:len(rest)-1], rest[:open]
	head, ok = strings.CutSuffix(head, " ")
	sp := strings.LastIndexByte(head, ' ')
	if !ok || sp < 0 {
		return Event{}, &AddrError{Addr: addr, Reason: noFrom}
	}
	host, head := head[sp+1:], head[:sp]
	head, ok = strings.CutSuffix(head, " from")
	if !ok || host == "" || strings.ContainsAny(host, "[]") {
		return Event{}, &AddrError{Addr: addr, Reason: noFrom}
	}
	lopen := strings.LastIndex(head, " [")
	if lopen < 0 || !strings.HasSuffix(head, "]") {
		return Event{}, &AddrError{Addr: addr, Reason: "login line has no [server address]"}
	}
	user := head[:lopen]
	// User names never contain brackets; one that does was written to look
	// like the fields that follow it.
	if user == "" || strings.ContainsAny(user, "[]") {
		return Event{}, &AddrError{Addr: addr, Reason: "user name contains brackets (user name injection?)"}
	}
	a, err := parseAddr(addr)
	if err != nil {
		return Event{}, err
	}
	return Event{Kind: Login, Addr: a, User: user, Daemon: t.Name()}, nil
}
