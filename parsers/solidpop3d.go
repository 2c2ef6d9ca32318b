package parsers

import "strings"

// solidPop3d recognises Solid POP3 (spop3d). Built with --enable-logextend
// it logs the client address on the success line, as in this line from a
// Debian system:
//
//	solid-pop3d[23857]: user abimail authenticated - 192.0.2.10
//
// Without it the address is on an earlier line of the same process, and a
// Correlator joins the Connect with the Auth:
//
//	spop3d[4711]: connect from 192.0.2.10
//	spop3d[4711]: user alice authenticated
//
// The failures fail2ban's solid-pop3d filter knows ("authentication failed:
// no such user: u - <ip>", "authentication failed for [mapped ]user u -
// <ip>", "APOP authentication failed ...", "root login not allowed - <ip>",
// "can't find APOP secret for user u - <ip>") are Fail events.
type solidPop3d struct{}

// Name implements Parser.
func (solidPop3d) Name() string { return "solid-pop3d" }

// Programs implements Parser.
func (solidPop3d) Programs() []string { return []string{"spop3d", "solid-pop3d"} }

// Parse implements Parser.
func (s solidPop3d) Parse(m Message) (Event, error) {
	text := m.Text
	switch {
	case strings.HasPrefix(text, "connect from "):
		a, err := parseAddrToEnd(text[len("connect from "):])
		if err != nil {
			return Event{}, err
		}
		return Event{Kind: Connect, Addr: a, Daemon: s.Name()}, nil

	case strings.HasPrefix(text, "user "):
		// The user is read as one word from the front: whatever a longer
		// name adds ("x authenticated - 203.0.113.66") then lands in the
		// address and refuses the line.
		user, tail, ok := strings.Cut(text[len("user "):], " ")
		if !ok || user == "" {
			return Event{}, ErrNoMatch
		}
		if tail == "authenticated" {
			return Event{Kind: Auth, User: user, Daemon: s.Name()}, nil
		}
		addr, ok := strings.CutPrefix(tail, "authenticated - ")
		if !ok {
			return Event{}, ErrNoMatch
		}
		a, err := parseAddrToEnd(addr)
		if err != nil {
			return Event{}, err
		}
		return Event{Kind: Login, Addr: a, User: user, Daemon: s.Name()}, nil

	case strings.HasPrefix(text, "authentication failed"),
		strings.HasPrefix(text, "APOP authentication failed"),
		strings.HasPrefix(text, "root login not allowed"),
		strings.HasPrefix(text, "can't find APOP secret"):
		return Event{Kind: Fail, Daemon: s.Name()}, nil
	}
	return Event{}, ErrNoMatch
}
