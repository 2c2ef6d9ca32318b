package parsers

import "strings"

// cyrus recognises the login lines of Cyrus IMAP imapd, pop3d and the murder
// proxies, such as this one from Cyrus 3.6.1 on Debian 12 (session id
// elided in the capture):
//
//	cyrus/imap[866]: login: localhost [127.0.0.1] alice plaintext User logged in SESSIONID=<...>
//
// Cyrus 2.x omits SESSIONID and sometimes the space in "host[ip]"; 3.13 and
// later log logfmt instead:
//
//	event=login.good session_id=... r.clienthost="client.example.net [192.0.2.10]" u.username=alice login.mech=PLAIN login.tls=1
//
// Anonymous logins never grant.
type cyrus struct{}

// Name implements Parser.
func (cyrus) Name() string { return "cyrus" }

// Programs implements Parser.
func (cyrus) Programs() []string {
	return []string{
		"imap", "imaps", "pop3", "pop3s", "imapd", "pop3d", "proxyd", "pop3proxyd",
		"cyrus/imap", "cyrus/imaps", "cyrus/pop3", "cyrus/pop3s",
		"cyrus/imapd", "cyrus/pop3d", "cyrus/proxyd", "cyrus/pop3proxyd",
	}
}

// Parse implements Parser.
func (c cyrus) Parse(m Message) (Event, error) {
	if rest, ok := strings.CutPrefix(m.Text, "login: "); ok {
		return c.parseProse(rest)
	}
	// logfmt_init always writes the event first; "login.good" alone would
	// also match "login.goodbye", hence the separator.
	if strings.HasPrefix(m.Text, "event=login.good ") {
		return c.parseLogfmt(m.Text)
	}
	return Event{}, ErrNoMatch
}

const cyrusLoggedIn = "User logged in"

// parseProse reads "<clienthost> <user> <mech> User logged in[ SESSIONID=<s>]".
// Every field is read from the front, and the user and mechanism must be
// single tokens: the anonymous line is "<clienthost> anonymous <password>",
// and the password is client text that could end in "User logged in".
func (c cyrus) parseProse(s string) (Event, error) {
	addr, rest, ok := cutClientHost(s)
	if !ok {
		return Event{}, ErrNoMatch
	}
	rest, ok = strings.CutPrefix(rest, " ")
	if !ok {
		return Event{}, ErrNoMatch
	}
	user, rest, ok := strings.Cut(rest, " ")
	if !ok || user == "" || strings.EqualFold(user, "anonymous") {
		return Event{}, ErrNoMatch
	}
	mech, rest, ok := strings.Cut(rest, " ")
	if !ok || mech == "" {
		return Event{}, ErrNoMatch
	}
	ev := Event{Kind: Login, User: user, Daemon: c.Name()}
	if rest != cyrusLoggedIn {
		sid, ok := strings.CutPrefix(rest, cyrusLoggedIn+" SESSIONID=<")
		if !ok {
			return Event{}, ErrNoMatch
		}
		if sid, ok = strings.CutSuffix(sid, ">"); !ok {
			return Event{}, ErrNoMatch
		}
		ev.Session = sid
	}
	a, err := parseAddr(addr)
	if err != nil {
		return Event{}, err
	}
	ev.Addr = a
	return ev, nil
}

// parseLogfmt reads a Cyrus 3.13+ event=login.good line. Values are only
// ever found through the tokenizer, so a quoted user name or anonymous
// password that contains "r.clienthost=..." stays inside its value.
func (c cyrus) parseLogfmt(s string) (Event, error) {
	var (
		ev                    = Event{Kind: Login, Daemon: c.Name()}
		host                  string
		hosts, users, events  int
		sessionID, rSessionID string
	)
	for {
		if s = strings.TrimLeft(s, " "); s == "" {
			break
		}
		key, val, rest, ok := nextLogfmtPair(s)
		if !ok {
			return Event{}, ErrNoMatch
		}
		s = rest
		switch key {
		case "event":
			events++
			if val != "login.good" {
				return Event{}, ErrNoMatch
			}
		case "r.clienthost":
			hosts++
			host = val
		case "u.username":
			users++
			ev.User = val
		case "login.anonymous":
			if val != "0" {
				return Event{}, ErrNoMatch
			}
		case "session_id":
			sessionID = val
		case "r.sessionid":
			rSessionID = val
		}
	}
	// Anonymous logins have no u.username; "~null~" is logfmt's NULL.
	if events != 1 || users != 1 || ev.User == "" || ev.User == "~null~" || strings.EqualFold(ev.User, "anonymous") {
		return Event{}, ErrNoMatch
	}
	ev.Session = sessionID
	if ev.Session == "" {
		ev.Session = rSessionID
	}
	switch hosts {
	case 0:
		return Event{}, &AddrError{Addr: "", Reason: "login.good has no r.clienthost"}
	case 1:
	default:
		return Event{}, &AddrError{Addr: host, Reason: "r.clienthost appears more than once"}
	}
	addr, rest, ok := cutClientHost(host)
	if !ok || rest != "" {
		return Event{}, &AddrError{Addr: host, Reason: "r.clienthost has no bracketed address"}
	}
	a, err := parseAddr(addr)
	if err != nil {
		return Event{}, err
	}
	ev.Addr = a
	return ev, nil
}

// nextLogfmtPair reads one key=value pair, as Cyrus lib/logfmt.c writes
// them, off the front of s. Quoted values are unescaped; a malformed pair
// makes the whole line unusable rather than guessed at.
func nextLogfmtPair(s string) (key, val, rest string, ok bool) {
	eq := strings.IndexByte(s, '=')
	if eq <= 0 {
		return "", "", "", false
	}
	key = s[:eq]
	if strings.ContainsAny(key, " \"\\") {
		return "", "", "", false
	}
	s = s[eq+1:]
	if s == "" || s[0] != '"' {
		val, rest, _ = strings.Cut(s, " ")
		if strings.ContainsAny(val, "\"\\=") {
			return "", "", "", false
		}
		return key, val, rest, true
	}
	// Quoted: find the closing quote, skipping escapes.
	escaped := false
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
			escaped = true
		case '"':
			raw := s[1:i]
			rest = s[i+1:]
			if rest != "" && rest[0] != ' ' {
				return "", "", "", false
			}
			if !escaped {
				return key, raw, rest, true
			}
			val, ok = unescapeLogfmt(raw)
			return key, val, rest, ok
		}
	}
	return "", "", "", false
}

func unescapeLogfmt(s string) (string, bool) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch != '\\' {
			b.WriteByte(ch)
			continue
		}
		i++
		if i >= len(s) {
			return "", false
		}
		switch s[i] {
		case '\\', '"':
			b.WriteByte(s[i])
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'x':
			// \x{hh}
			if i+4 >= len(s) || s[i+1] != '{' || s[i+4] != '}' {
				return "", false
			}
			hi, ok1 := unhex(s[i+2])
			lo, ok2 := unhex(s[i+3])
			if !ok1 || !ok2 {
				return "", false
			}
			b.WriteByte(hi<<4 | lo)
			i += 4
		default:
			return "", false
		}
	}
	return b.String(), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
