package parsers

import (
	"net/netip"
	"strings"
)

// courier recognises the login lines of Courier-IMAP and Courier POP3, such
// as this one from courier-pop 5.0.13 on Debian 12:
//
//	pop3d: LOGIN, user=alice, ip=[::ffff:127.0.0.2], port=[51871]
//
// Newer builds append protocol=, starttls=1 or stls=1; Courier listens on
// IPv6 sockets, so IPv4 clients usually appear v4-mapped.
type courier struct{}

// Name implements Parser.
func (courier) Name() string { return "courier" }

// Programs implements Parser.
func (courier) Programs() []string {
	return []string{
		"imapd", "imapd-ssl", "pop3d", "pop3d-ssl",
		"courierpop3login", "imaplogin",
		"courier-imap", "courier-pop3", "courier-imapd", "courier-pop3d",
	}
}

// Parse implements Parser.
func (c courier) Parse(m Message) (Event, error) {
	// "LOGIN FAILED, ..." shares the first word, so the comma is part of the
	// success literal.
	if elems, ok := strings.CutPrefix(m.Text, "LOGIN, "); ok {
		return c.login(elems)
	}
	for _, verb := range courierSessionEnds {
		if elems, ok := strings.CutPrefix(m.Text, verb); ok {
			return c.logout(elems)
		}
	}
	return Event{}, ErrNoMatch
}

// courierSessionEnds are the lines that end a logged-in session; they carry
// the same ip and port as its LOGIN line.
var courierSessionEnds = [...]string{"LOGOUT, ", "DISCONNECTED, ", "TIMEOUT, "}

// courierFields is what a Courier status line says, read by key.
type courierFields struct {
	user, ip, port string
	users, ips     int
}

func readCourierFields(elems string) (courierFields, bool) {
	var f courierFields
	for elems != "" {
		var elem string
		elem, elems, _ = strings.Cut(elems, ", ")
		key, val, hasVal := strings.Cut(elem, "=")
		if !hasVal {
			// Every element of these lines is key=value; a bare word
			// ("LOGIN, FAILED, ...") means some other message.
			return f, false
		}
		switch key {
		case "ip":
			f.ips++
			f.ip = val
		case "user":
			f.users++
			if f.users == 1 {
				f.user = val
			}
		case "port":
			if f.port == "" {
				f.port = val
			}
		}
	}
	return f, true
}

// session names a Courier connection by client address and port, which both
// its LOGIN and its LOGOUT line log.
func (f courierFields) session(a netip.Addr) string {
	port := strings.TrimSuffix(strings.TrimPrefix(f.port, "["), "]")
	if port == "" || !allDigits(port) {
		return ""
	}
	return a.String() + "/" + port
}

func (c courier) login(elems string) (Event, error) {
	f, ok := readCourierFields(elems)
	if !ok {
		return Event{}, ErrNoMatch
	}
	// Courier logs the user name bare, so a name containing ", ip=[...]"
	// splits into an extra ip= element. Counting them all turns such a line
	// into a refusal instead of a grant for the injected address.
	switch f.ips {
	case 0:
		return Event{}, &AddrError{Addr: "", Reason: "LOGIN line has no ip= element"}
	case 1:
	default:
		return Event{}, &AddrError{Addr: f.ip, Reason: "ip= appears more than once (user name injection?)"}
	}
	if len(f.ip) < 2 || f.ip[0] != '[' || f.ip[len(f.ip)-1] != ']' {
		return Event{}, &AddrError{Addr: f.ip, Reason: "ip= is not bracketed"}
	}
	a, err := parseAddr(f.ip)
	if err != nil {
		return Event{}, err
	}
	return Event{Kind: Login, Addr: a, User: f.user, Daemon: c.Name(), Session: f.session(a)}, nil
}

func (c courier) logout(elems string) (Event, error) {
	f, ok := readCourierFields(elems)
	// Without user= the connection never logged in (the login front end's
	// own LOGOUT); with more than one ip= the line is not to be trusted.
	if !ok || f.users != 1 || f.ips != 1 {
		return Event{}, ErrNoMatch
	}
	a, err := parseAddr(f.ip)
	if err != nil {
		return Event{}, ErrNoMatch
	}
	session := f.session(a)
	if session == "" {
		return Event{}, ErrNoMatch
	}
	return Event{Kind: Logout, Addr: a, User: f.user, Daemon: c.Name(), Session: session}, nil
}
