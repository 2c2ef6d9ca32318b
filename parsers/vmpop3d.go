package parsers

import "strings"

// vmPop3d recognises vm-pop3d (virtualmail-pop3d). Current builds, such as
// DirectAdmin's 1.1.7f, log the address on the success line:
//
//	vm-pop3d[20764]: User 'alice@example.org' logged in from 192.0.2.10, nmsgs=3
//
// Older ones (and vm-pop3d-cc) log it on a connection line of the same
// process, which a Correlator joins with the success line:
//
//	vm-pop3d[5120]: Connect from 192.0.2.10
//	vm-pop3d[5120]: User 'alice' logged in
//
// with "User alice logged in" (unquoted) in the oldest versions and "User
// 'alice' of 'example.org' logged in" for virtual domains. "User 'u' -
// failed auth, ... from=<ip>" and "Connection opened" / "Incoming connection
// opened" (a session whose address could not be read) are Fail events;
// "Session ended for user: 'u' from <ip>, nmsgs=N, ndel=N" is a Logout.
//
// vm-pop3d refuses a USER argument containing a space, so the user name is
// always one word.
type vmPop3d struct{}

// Name implements Parser.
func (vmPop3d) Name() string { return "vm-pop3d" }

// Programs implements Parser.
func (vmPop3d) Programs() []string { return []string{"vm-pop3d"} }

const vmSessionEnded = "Session ended for user: "

// Parse implements Parser.
func (v vmPop3d) Parse(m Message) (Event, error) {
	text := m.Text
	switch {
	case strings.HasPrefix(text, "Connect from "):
		a, err := parseAddrToEnd(text[len("Connect from "):])
		if err != nil {
			return Event{}, err
		}
		return Event{Kind: Connect, Addr: a, Daemon: v.Name()}, nil
	case text == "Connection opened", text == "Incoming connection opened":
		return Event{Kind: Fail, Daemon: v.Name()}, nil
	case strings.HasPrefix(text, "User "):
		return v.parseUser(text[len("User "):])
	case strings.HasPrefix(text, vmSessionEnded):
		return v.parseEnded(text[len(vmSessionEnded):]), nil
	}
	return Event{}, ErrNoMatch
}

// parseUser reads "'u'[ of 'dom'] logged in[ from <ip>[, nmsgs=N]]" and
// "'u' - failed auth, ...".
func (v vmPop3d) parseUser(s string) (Event, error) {
	tok, rest, _ := strings.Cut(s, " ")
	user, ok := vmUnquote(tok)
	if !ok {
		return Event{}, ErrNoMatch
	}
	if strings.HasPrefix(rest, "- ") {
		return Event{Kind: Fail, Daemon: v.Name()}, nil
	}
	if r, isVirtual := strings.CutPrefix(rest, "of "); isVirtual {
		var dom string
		dom, rest, _ = strings.Cut(r, " ")
		// The virtual-domain form always quotes both names.
		if !strings.HasPrefix(tok, "'") || !strings.HasPrefix(dom, "'") {
			return Event{}, ErrNoMatch
		}
		if dom, ok = vmUnquote(dom); !ok {
			return Event{}, ErrNoMatch
		}
		user += "@" + dom
	}
	if rest == "logged in" {
		return Event{Kind: Auth, User: user, Daemon: v.Name()}, nil
	}
	addr, ok := strings.CutPrefix(rest, "logged in from ")
	if !ok {
		return Event{}, ErrNoMatch
	}
	// DirectAdmin's build appends ", nmsgs=N".
	addr, _, _ = strings.Cut(addr, ",")
	a, err := parseAddrToEnd(addr)
	if err != nil {
		return Event{}, err
	}
	return Event{Kind: Login, Addr: a, User: user, Daemon: v.Name()}, nil
}

// parseEnded reads "'u' from <ip>, nmsgs=N, ndel=N" into a Logout. The
// address is kept only when it is grantable; a Logout never grants.
func (v vmPop3d) parseEnded(s string) Event {
	ev := Event{Kind: Logout, Daemon: v.Name()}
	tok, rest, _ := strings.Cut(s, " ")
	if user, ok := vmUnquote(tok); ok {
		ev.User = user
	}
	if addr, ok := strings.CutPrefix(rest, "from "); ok {
		addr, _, _ = strings.Cut(addr, ",")
		if a, err := parseAddrToEnd(addr); err == nil {
			ev.Addr = a
		}
	}
	return ev
}

// vmUnquote strips the single quotes vm-pop3d puts around names; the oldest
// versions log them bare.
func vmUnquote(tok string) (string, bool) {
	if strings.HasPrefix(tok, "'") {
		if len(tok) < 3 || !strings.HasSuffix(tok, "'") {
			return "", false
		}
		return tok[1 : len(tok)-1], true
	}
	if tok == "" || strings.HasSuffix(tok, "'") {
		return "", false
	}
	return tok, true
}
