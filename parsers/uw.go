package parsers

import "strings"

// uw recognises the login lines of the University of Washington imapd and
// ipop3d (c-client), such as this ipop3d line (the shape of the samples
// collected for popbefored; no UW daemon was run for a capture):
//
//	ipop3d[21869]: Login user=alice host=client.example.net [192.0.2.10] nmsgs=0/0
//
// imapd also logs "Authenticated user=" (SASL), ipop3d "Auth user=" and
// "APOP user=". The host is tcp_clienthost(): "name [ip]" or "[ip]"; old
// builds logged only a name, which cannot be granted.
type uw struct{}

// Name implements Parser.
func (uw) Name() string { return "uw" }

// Programs implements Parser.
func (uw) Programs() []string {
	return []string{"imapd", "imaps", "ipop3d", "pop3s", "ipop3sd", "imapsd"}
}

// The success verbs, each with the one space before "user=". "Login failed
// user=", "Login disabled user=" and friends differ right after "Login".
var uwVerbs = [...]string{"Login user=", "Authenticated user=", "Auth user=", "APOP user="}

const uwHost = " host="

// uwSessionEnds end a logged-in session; the process logs nothing after them.
var uwSessionEnds = [...]string{"Logout user=", "Autologout user=", "Killed (lost mailbox lock) user="}

// Parse implements Parser.
func (u uw) Parse(m Message) (Event, error) {
	var rest string
	matched := false
	for _, verb := range uwVerbs {
		if r, ok := strings.CutPrefix(m.Text, verb); ok {
			rest, matched = r, true
			break
		}
	}
	if !matched {
		return u.logout(m)
	}
	// The user name (up to 80 bytes of client text) comes first and may
	// contain " host=[...]" itself; only a line with exactly one host
	// field is unambiguous.
	i := strings.Index(rest, uwHost)
	if i < 0 {
		return Event{}, ErrNoMatch
	}
	user, host := rest[:i], rest[i+len(uwHost):]
	if user == "" {
		return Event{}, ErrNoMatch
	}
	if strings.Contains(host, uwHost) {
		return Event{}, &AddrError{Addr: host, Reason: "host= appears more than once (user name injection?)"}
	}
	host = trimNmsgs(host)
	addr, tail, ok := cutClientHost(host)
	if !ok {
		return Event{}, &AddrError{Addr: host, Reason: "host= has no complete bracketed address"}
	}
	if tail != "" {
		return Event{}, ErrNoMatch
	}
	a, err := parseAddr(addr)
	if err != nil {
		return Event{}, err
	}
	return Event{Kind: Login, Addr: a, User: user, Daemon: u.Name(), Session: uwSession(m)}, nil
}

// uwSession names the session by its process: imapd and ipop3d run one
// process per connection, which logs both the login and the logout.
func uwSession(m Message) string {
	if m.PID == "" {
		return ""
	}
	return m.Host + "/" + m.Program + "[" + m.PID + "]"
}

func (u uw) logout(m Message) (Event, error) {
	for _, verb := range uwSessionEnds {
		rest, ok := strings.CutPrefix(m.Text, verb)
		if !ok {
			continue
		}
		session := uwSession(m)
		if session == "" {
			return Event{}, ErrNoMatch
		}
		user, _, _ := strings.Cut(rest, uwHost)
		return Event{Kind: Logout, User: user, Daemon: u.Name(), Session: session}, nil
	}
	return Event{}, ErrNoMatch
}

// trimNmsgs removes the " nmsgs=N/M" ipop3d appends after the host.
func trimNmsgs(s string) string {
	i := strings.LastIndex(s, " nmsgs=")
	if i < 0 {
		return s
	}
	n := s[i+len(" nmsgs="):]
	slash := strings.IndexByte(n, '/')
	if slash <= 0 || slash == len(n)-1 || !allDigits(n[:slash]) || !allDigits(n[slash+1:]) {
		return s
	}
	return s[:i]
}
