package parsers

import "strings"

// Courier recognises the login lines of Courier-IMAP and Courier POP3, such
// as this one from courier-pop 5.0.13 on Debian 12:
//
//	pop3d: LOGIN, user=alice, ip=[::ffff:127.0.0.2], port=[51871]
//
// Newer builds append protocol=, starttls=1 or stls=1; Courier listens on
// IPv6 sockets, so IPv4 clients usually appear v4-mapped.
type Courier struct{}

// Name implements Parser.
func (Courier) Name() string { return "courier" }

// Programs implements Parser.
func (Courier) Programs() []string {
	return []string{
		"imapd", "imapd-ssl", "pop3d", "pop3d-ssl",
		"courierpop3login", "imaplogin",
		"courier-imap", "courier-pop3", "courier-imapd", "courier-pop3d",
	}
}

// Parse implements Parser.
func (c Courier) Parse(m Message) (Event, error) {
	// "LOGIN FAILED, ..." shares the first word, so the comma is part of the
	// success literal.
	elems, ok := strings.CutPrefix(m.Text, "LOGIN, ")
	if !ok {
		return Event{}, ErrNoMatch
	}
	// Courier logs the user name bare, so a name containing ", ip=[...]"
	// splits into an extra ip= element. Counting them all turns such a line
	// into a refusal instead of a grant for the injected address.
	var (
		ev       = Event{Kind: Login, Daemon: c.Name()}
		ip       string
		ips      int
		haveUser bool
	)
	for elems != "" {
		var elem string
		elem, elems, _ = strings.Cut(elems, ", ")
		key, val, hasVal := strings.Cut(elem, "=")
		if !hasVal {
			// Every element of the success line is key=value; a bare word
			// ("LOGIN, FAILED, ...") means some other message.
			return Event{}, ErrNoMatch
		}
		switch key {
		case "ip":
			ips++
			ip = val
		case "user":
			if !haveUser {
				haveUser = true
				ev.User = val
			}
		}
	}
	switch ips {
	case 0:
		return Event{}, &AddrError{Addr: "", Reason: "courier LOGIN line has no ip= element"}
	case 1:
	default:
		return Event{}, &AddrError{Addr: ip, Reason: "ip= appears more than once (user name injection?)"}
	}
	if len(ip) < 2 || ip[0] != '[' || ip[len(ip)-1] != ']' {
		return Event{}, &AddrError{Addr: ip, Reason: "courier ip= is not bracketed"}
	}
	a, err := ParseAddr(ip)
	if err != nil {
		return Event{}, err
	}
	ev.Addr = a
	return ev, nil
}
