package parsers

import "strings"

// perdition recognises the authentication line of the perdition IMAP/POP3
// proxy (perdition_log_auth in perdition.c), such as
//
//	perdition.imaps[2210]: Auth: 192.0.2.10:50412->203.0.113.5:993 client-secure=ssl authorisation_id=NONE authentication_id="alice" server="backend.example.org:993" protocol=IMAP4S server-secure=ssl status="ok"
//
// Failures have the same shape with status="failed: <reason>"; only "ok"
// grants. perdition 1.x logged
// `Auth: 192.0.2.10->203.0.113.5 user="alice" server="backend" port="143" status="ok"`.
// The client is the address before the first "->" (the one after it is
// perdition's own). getnameinfo() writes IPv6 addresses without brackets,
// so the port is whatever follows the last ':'.
type perdition struct{}

// Name implements Parser.
func (perdition) Name() string { return "perdition" }

// Programs implements Parser. perdition logs under its argv[0]; these are
// the names it is installed under. perdition.managesieve is left out: a
// sieve login says nothing about where mail is read from.
func (perdition) Programs() []string {
	return []string{
		"perdition", "perdition.imap4", "perdition.imap4s", "perdition.imaps",
		"perdition.pop3", "perdition.pop3s",
	}
}

const perditionOK = ` status="ok"`

// perdition's own keys. Each appears at most once in a line it writes; a
// second one comes from a quote inside a client-supplied value.
var perditionKeys = [...]string{
	"client-secure", "authorisation_id", "authentication_id", "passwd",
	"server", "protocol", "server-secure", "status", "user", "port",
}

// Parse implements Parser.
func (p perdition) Parse(m Message) (Event, error) {
	rest, ok := strings.CutPrefix(m.Text, "Auth:")
	if !ok || !strings.HasSuffix(rest, perditionOK) {
		return Event{}, ErrNoMatch
	}
	// Without a peer (inetd on a non-socket) the host pair is empty and
	// the line goes straight on to " client-secure=...".
	var hosts string
	if r, ok := strings.CutPrefix(rest, " "); ok {
		sp := strings.IndexByte(r, ' ')
		if sp < 0 {
			sp = len(r)
		}
		hosts, rest = r[:sp], r[sp:]
	}
	from, _, ok := strings.Cut(hosts, "->")
	if ok && strings.Count(hosts, "->") != 1 {
		// perdition writes one client->server pair; in any other shape
		// which address is the client's cannot be told.
		return Event{}, &AddrError{Addr: hosts, Reason: "Auth line's host pair is not client->server"}
	}
	if !ok || strings.IndexByte(hosts, '=') >= 0 {
		return Event{}, &AddrError{Addr: "", Reason: "Auth line has no client->server addresses"}
	}

	// Quoted values are client text (the user names) written without
	// escaping. Walking the fields strictly turns a quote inside one into a
	// malformed line or a repeated key, and refuses it.
	var (
		seen    [len(perditionKeys)]bool
		ev      = Event{Kind: Login, Daemon: p.Name()}
		newForm bool
	)
	for rest != "" {
		key, val, r, ok := nextPerditionField(rest)
		if !ok {
			return Event{}, &AddrError{Addr: from, Reason: "Auth line is malformed (a quote in the user name?)"}
		}
		rest = r
		for i, k := range perditionKeys {
			if k != key {
				continue
			}
			if seen[i] {
				return Event{}, &AddrError{Addr: from, Reason: key + "= appears more than once (user name injection?)"}
			}
			seen[i] = true
		}
		switch key {
		case "authentication_id", "user":
			ev.User = val
		case "client-secure":
			newForm = true
		case "protocol":
			if strings.EqualFold(val, "MANAGESIEVE") {
				return Event{}, ErrNoMatch
			}
		}
	}

	addr := from
	if newForm {
		var err error
		if addr, err = perditionStripPort(from); err != nil {
			return Event{}, err
		}
	} else if _, err := parseAddr(addr); err != nil {
		// 1.x wrote bare IPv4 addresses; strip a port if one is there.
		if a, perr := perditionStripPort(from); perr == nil {
			addr = a
		}
	}
	a, err := parseAddr(addr)
	if err != nil {
		return Event{}, err
	}
	ev.Addr = a
	return ev, nil
}

// nextPerditionField reads ` key=value` or ` key="value"` off the front of s.
func nextPerditionField(s string) (key, val, rest string, ok bool) {
	s, ok = strings.CutPrefix(s, " ")
	if !ok {
		return "", "", "", false
	}
	eq := strings.IndexByte(s, '=')
	if eq <= 0 {
		return "", "", "", false
	}
	key, s = s[:eq], s[eq+1:]
	for i := 0; i < len(key); i++ {
		if c := key[i]; (c < 'a' || c > 'z') && c != '_' && c != '-' {
			return "", "", "", false
		}
	}
	if q, ok := strings.CutPrefix(s, `"`); ok {
		end := strings.IndexByte(q, '"')
		if end < 0 {
			return "", "", "", false
		}
		val, rest = q[:end], q[end+1:]
		if rest != "" && rest[0] != ' ' {
			return "", "", "", false
		}
		return key, val, rest, true
	}
	if sp := strings.IndexByte(s, ' '); sp >= 0 {
		return key, s[:sp], s[sp:], true
	}
	return key, s, "", true
}

// perditionStripPort removes the ":port" getnameinfo() put after the
// address, with or without brackets around an IPv6 address.
func perditionStripPort(s string) (string, error) {
	var addr, port string
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", &AddrError{Addr: s, Reason: "unterminated [address]"}
		}
		addr, port = s[1:end], s[end+1:]
		if port != "" {
			var ok bool
			if port, ok = strings.CutPrefix(port, ":"); !ok {
				return "", &AddrError{Addr: s, Reason: "client address has junk after ]"}
			}
		}
	} else {
		colon := strings.LastIndexByte(s, ':')
		if colon < 0 {
			return "", &AddrError{Addr: s, Reason: "client address has no :port"}
		}
		addr, port = s[:colon], s[colon+1:]
	}
	// "[address]" and "address:" come without a port: only a port that is
	// there must be a number.
	if port != "" && !allDigits(port) {
		return "", &AddrError{Addr: s, Reason: "client port is not a number"}
	}
	return addr, nil
}
