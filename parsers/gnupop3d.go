package parsers

import "strings"

// gnuPop3d recognises the pop3d of GNU Mailutils. Its success line names the
// user and mailbox but not the client, in wording that changed over the
// releases (pop3d/user.c, apop.c):
//
//	pop3d[3302]: User 'alice' logged in with mailbox '/var/mail/alice' (2 msgs)
//	gnu-pop3d[3302]: user `alice' logged in with mailbox `mbox:/var/mail/alice' (2 messages)
//
// so it is an Auth event, and a Correlator joins it with the address line the
// same process logged when the client connected. Mailutils 1.x to 2.x log
//
//	pop3d[3302]: Incoming connection opened
//	pop3d[3302]: connect from 192.0.2.10
//
// (lower-case "incoming" in 2.x). The first line is a Fail, so that a stale
// address line of an earlier process with the same PID is forgotten; the
// second is the Connect. Mailutils 3 no longer logs the client address, so
// its logins cannot be granted from the log. A success line of one early
// build that ends in "from <ip>" (pop-before-smtp's pattern) is a Login.
//
// "user `u' nonexistent", "user `u': authentication failed", "possible probe
// of account `u'", "user `u' tried to log in within the minimum allowed
// delay", "APOP user u tried to log in with USER", the TCP wrapper's "Access
// from <ip> blocked." and "session ended for ..." are Fail events. Courier and Cyrus also log as pop3d; their lines
// never match here, and this parser's lines never match theirs.
type gnuPop3d struct{}

// Name implements Parser.
func (gnuPop3d) Name() string { return "gnu-pop3d" }

// Programs implements Parser.
func (gnuPop3d) Programs() []string { return []string{"gnu-pop3d", "pop3d"} }

const gnuLoggedIn = "logged in with mailbox "

// Parse implements Parser.
func (g gnuPop3d) Parse(m Message) (Event, error) {
	text := m.Text
	if rest, ok := cutEitherCase(text, "connect from "); ok {
		a, err := parseAddrToEnd(rest)
		if err != nil {
			return Event{}, err
		}
		return Event{Kind: Connect, Addr: a, Daemon: g.Name()}, nil
	}
	if rest, ok := cutEitherCase(text, "user "); ok {
		return g.parseUser(rest)
	}
	if text == "Incoming connection opened" || text == "incoming connection opened" {
		return Event{Kind: Fail, Daemon: g.Name()}, nil
	}
	if _, ok := cutEitherCase(text, "possible probe of account "); ok {
		return Event{Kind: Fail, Daemon: g.Name()}, nil
	}
	if _, ok := cutEitherCase(text, "session ended for "); ok {
		return Event{Kind: Fail, Daemon: g.Name()}, nil
	}
	if strings.HasPrefix(text, "APOP user ") && strings.HasSuffix(text, " tried to log in with USER") ||
		strings.HasPrefix(text, "Access from ") && strings.HasSuffix(text, " blocked.") ||
		text == "Rejecting connection from unknown address" {
		return Event{Kind: Fail, Daemon: g.Name()}, nil
	}
	return Event{}, ErrNoMatch
}

// parseUser reads what follows "User " or "user ": the name as one word
// (pop3d refuses a USER argument with a space), then the verdict.
func (g gnuPop3d) parseUser(s string) (Event, error) {
	tok, tail, ok := strings.Cut(s, " ")
	if !ok {
		return Event{}, ErrNoMatch
	}
	if tail == "authentication failed" && strings.HasSuffix(tok, ":") {
		return Event{Kind: Fail, Daemon: g.Name()}, nil
	}
	user, ok := gnuUnquote(tok)
	if !ok {
		return Event{}, ErrNoMatch
	}
	switch {
	case tail == "nonexistent", strings.HasPrefix(tail, "tried to log in"):
		return Event{Kind: Fail, Daemon: g.Name()}, nil
	case !strings.HasPrefix(tail, gnuLoggedIn) || len(tail) == len(gnuLoggedIn):
		return Event{}, ErrNoMatch
	}
	mailbox := tail[len(gnuLoggedIn):]
	if i := strings.LastIndex(mailbox, " from "); i >= 0 {
		// Mailbox names come from the administrator's configuration and
		// the one-word user name, so " from " followed by one more word
		// is the client address of the early build, not part of a name.
		if addr := mailbox[i+len(" from "):]; !strings.ContainsAny(addr, " \t") {
			a, err := parseAddrToEnd(addr)
			if err != nil {
				return Event{}, err
			}
			return Event{Kind: Login, Addr: a, User: user, Daemon: g.Name()}, nil
		}
	}
	return Event{Kind: Auth, User: user, Daemon: g.Name()}, nil
}

// cutEitherCase cuts prefix, whose first letter is lower case, off s in
// either the lower- or upper-case spelling mailutils has used.
func cutEitherCase(s, prefix string) (string, bool) {
	if rest, ok := strings.CutPrefix(s, prefix); ok {
		return rest, true
	}
	if len(s) < len(prefix) || s[0] != prefix[0]-'a'+'A' || s[1:len(prefix)] != prefix[1:] {
		return "", false
	}
	return s[len(prefix):], true
}

// gnuUnquote strips the quotes of 'name' or `name' (or takes a bare name, as
// the oldest releases logged it).
func gnuUnquote(tok string) (string, bool) {
	if tok == "" {
		return "", false
	}
	switch tok[0] {
	case '\'', '`':
		if len(tok) < 3 || tok[len(tok)-1] != '\'' {
			return "", false
		}
		return tok[1 : len(tok)-1], true
	}
	if strings.ContainsAny(tok, "'`") {
		return "", false
	}
	return tok, true
}
