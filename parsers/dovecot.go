package parsers

import "strings"

// Dovecot recognises the login lines of Dovecot 1.x to 2.4, such as this one
// from Dovecot 2.3.19 on Debian 12:
//
//	dovecot: pop3-login: Login: user=<alice>, method=PLAIN, rip=127.0.0.2, lip=127.0.0.1, mpid=406, session=<5tSnXMtgQ5p/AAAC>
//
// Dovecot 2.4 says "Logged in:" instead of "Login:"; 1.x logs under the tags
// imap-login and pop3-login, sometimes with an "Info: " prefix. Only
// imap-login and pop3-login lines grant.
type Dovecot struct{}

// Name implements Parser.
func (Dovecot) Name() string { return "dovecot" }

// Programs implements Parser.
func (Dovecot) Programs() []string {
	return []string{"dovecot", "imap-login", "pop3-login"}
}

// Parse implements Parser.
func (d Dovecot) Parse(m Message) (Event, error) {
	text := strings.TrimPrefix(m.Text, "Info: ")
	if strings.HasPrefix(text, "imap(") || strings.HasPrefix(text, "pop3(") {
		if m.Program != "dovecot" {
			return Event{}, ErrNoMatch
		}
		return d.sessionEnd(text)
	}
	switch m.Program {
	case "dovecot":
		// Only the login processes decide success, and only for the mail
		// protocols: submission is SMTP AUTH already, and a sieve login says
		// nothing about who may send mail.
		var ok bool
		if text, ok = strings.CutPrefix(text, "imap-login: "); !ok {
			if text, ok = strings.CutPrefix(text, "pop3-login: "); !ok {
				return Event{}, ErrNoMatch
			}
		}
		text = strings.TrimPrefix(text, "Info: ")
	case "imap-login", "pop3-login":
	default:
		return Event{}, ErrNoMatch
	}
	// The verdict is the word right after the process prefix. Failure lines
	// carry the same elements (and a reason the client may shape), so they
	// must never reach the element walk below.
	elems, ok := strings.CutPrefix(text, "Login: ")
	if !ok {
		if elems, ok = strings.CutPrefix(text, "Logged in: "); !ok {
			return Event{}, ErrNoMatch
		}
	}

	// Admins can reorder login_log_format_elements, so fields are found by
	// key. The user name is client text inside user=<...> and may itself
	// contain ", rip=...": a <...> value runs on to the first piece that
	// ends in ">", a rip= inside it refuses the line, and so does a second
	// rip= outside it (a name such as "x>, rip=...").
	var (
		ev       = Event{Kind: Login, Daemon: d.Name()}
		rip      string
		rips     int
		injected bool
		haveUser bool
		sessions int
	)
	for elems != "" {
		var elem string
		elem, elems, _ = strings.Cut(elems, ", ")
		key, val, hasVal := strings.Cut(elem, "=")
		if !hasVal {
			continue // TLS, secured, "TLS handshaking"
		}
		if strings.HasPrefix(val, "<") && !strings.HasSuffix(val, ">") {
			var more string
			more, elems, injected = cutAngleValue(elems, injected)
			val += more
		}
		switch key {
		case "rip":
			rips++
			rip = val
		case "user":
			if !haveUser {
				haveUser = true
				ev.User = trimAngles(val)
			}
		case "session":
			sessions++
			ev.Session = trimAngles(val)
		case "method":
			// ANONYMOUS logs in as anonymous_username without any
			// credential, so it proves nothing about the client.
			if strings.EqualFold(val, "ANONYMOUS") {
				return Event{}, ErrNoMatch
			}
		}
	}
	if sessions != 1 {
		ev.Session = ""
	}
	switch {
	case injected:
		return Event{}, &AddrError{Addr: rip, Reason: "a <...> value contains rip= (user name injection?)"}
	case rips == 0:
		return Event{}, &AddrError{Addr: "", Reason: "dovecot login line has no rip= element"}
	case rips > 1:
		return Event{}, &AddrError{Addr: rip, Reason: "rip= appears more than once (user name injection?)"}
	}
	a, err := ParseAddr(rip)
	if err != nil {
		return Event{}, err
	}
	ev.Addr = a
	return ev, nil
}

// cutAngleValue consumes the ", "-separated pieces of elems up to and
// including the first one that ends in ">", the rest of a <...> value that
// contained ", ". It reports whether any of them looked like a rip= element.
func cutAngleValue(elems string, injected bool) (more, rest string, _ bool) {
	start := elems
	for elems != "" {
		var piece string
		piece, elems, _ = strings.Cut(elems, ", ")
		if strings.HasPrefix(piece, "rip=") {
			injected = true
		}
		if strings.HasSuffix(piece, ">") {
			break
		}
	}
	// elems is a suffix of start, so the consumed text is a prefix of it
	// (minus the ", " that separated it from what follows).
	if more = strings.TrimSuffix(start[:len(start)-len(elems)], ", "); more != "" {
		more = ", " + more
	}
	return more, elems, injected
}

func trimAngles(s string) string {
	s = strings.TrimPrefix(s, "<")
	return strings.TrimSuffix(s, ">")
}

// sessionEnd reads the mail process's last line of a session,
//
//	imap(alice)<4711><kX3b8Qp7aMDAAAIK>: Disconnected: Logged out in=123 out=456
//
// (mail_log_prefix "%s(%u)<%{pid}><%{session}>: ", the default since 2.3).
// It has no address: the session id ties it to its login line.
func (d Dovecot) sessionEnd(text string) (Event, error) {
	// The user name may contain anything, so the prefix is found from the
	// end: "<pid><session>: " is the last "<...><...>: " before the message.
	colon := strings.Index(text, ">: ")
	if colon < 0 {
		return Event{}, ErrNoMatch
	}
	head, msg := text[:colon], text[colon+len(">: "):]
	sessOpen := strings.LastIndexByte(head, '<')
	if sessOpen < 2 || head[sessOpen-1] != '>' {
		return Event{}, ErrNoMatch
	}
	session := head[sessOpen+1:]
	pidOpen := strings.LastIndexByte(head[:sessOpen-1], '<')
	if pidOpen < 0 || !allDigits(head[pidOpen+1:sessOpen-1]) || pidOpen+1 == sessOpen-1 {
		return Event{}, ErrNoMatch
	}
	userPart := head[:pidOpen]
	if session == "" || !strings.HasSuffix(userPart, ")") {
		return Event{}, ErrNoMatch
	}
	user := userPart[len("imap(") : len(userPart)-1]
	if !strings.HasPrefix(msg, "Disconnected") && !strings.HasPrefix(msg, "Connection closed") && !strings.HasPrefix(msg, "Logged out") {
		return Event{}, ErrNoMatch
	}
	return Event{Kind: Logout, User: user, Daemon: d.Name(), Session: session}, nil
}
