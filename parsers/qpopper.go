package parsers

import "strings"

// qpopper recognises the login lines of Qualcomm qpopper 3.x and 4.x, such
// as this one from a 4.0.9 build with LOG_LOGIN:
//
//	in.qpopper[7597]: (v4.0.9) POP login by user "alice" at (client.example.net) 192.0.2.10 [pop_log.c:244]
//
// The text is pop_init.c's default log-login string; the " [file.c:NNN]"
// trailer is added by pop_log.c in builds with DEBUGGING. Sites built
// without LOG_LOGIN only have the statistics line pop_updt.c writes at the
// end of an authenticated session (with -s or the "statistics" option):
//
//	Stats: alice 0 0 3 5120 client.example.net 192.0.2.10
//
// That line is late (after QUIT), but it is the only one those sites have.
type qpopper struct{}

// Name implements Parser.
func (qpopper) Name() string { return "qpopper" }

// Programs implements Parser. The tag follows the name the binary is
// installed and started under, which differs between packages.
func (qpopper) Programs() []string { return []string{"popper", "qpopper", "in.qpopper"} }

const (
	qpopperLoginBy = ") POP login by user \""
	qpopperAt      = "\" at ("
)

// Parse implements Parser.
func (q qpopper) Parse(m Message) (Event, error) {
	if rest, ok := strings.CutPrefix(m.Text, "Stats: "); ok {
		return q.stats(rest)
	}
	if strings.HasPrefix(m.Text, "(v") {
		return q.login(m.Text)
	}
	return Event{}, ErrNoMatch
}

func (q qpopper) login(text string) (Event, error) {
	// "(v4.0.9) Servicing request from ..." shares the version prefix.
	i := strings.Index(text, qpopperLoginBy)
	if i < 0 || strings.IndexByte(text[:i], ' ') >= 0 {
		return Event{}, ErrNoMatch
	}
	rest := text[i+len(qpopperLoginBy):]
	// qpopper splits commands at spaces, so a real user name never contains
	// `" at (`. More than one means the name was built to carry a second
	// host and address; refuse instead of guessing which is real.
	j := strings.Index(rest, qpopperAt)
	if j < 0 {
		return Event{}, ErrNoMatch
	}
	user, rest := rest[:j], rest[j+len(qpopperAt):]
	if user == "" {
		return Event{}, ErrNoMatch
	}
	if strings.Contains(rest, qpopperAt) {
		return Event{}, &AddrError{Addr: rest, Reason: `"at (" appears more than once (user name injection?)`}
	}
	// The client host is a resolver name or the address itself: no ')'.
	k := strings.IndexByte(rest, ')')
	if k < 0 || !strings.HasPrefix(rest[k+1:], " ") {
		return Event{}, &AddrError{Addr: rest, Reason: "login line has no (host) address"}
	}
	addr := qpopperTrimWhence(rest[k+2:])
	return q.event(addr, user)
}

// stats reads "user deleted-msgs deleted-bytes kept-msgs kept-bytes [host]
// address". pop_updt.c logs it only for a session that reached the
// transaction state, that is, after a successful authentication.
func (q qpopper) stats(rest string) (Event, error) {
	rest = qpopperTrimWhence(rest)
	var f [8]string
	n := 0
	for rest != "" && n < len(f) {
		f[n], rest, _ = strings.Cut(rest, " ")
		n++
	}
	if rest != "" || n < 5 || n > 7 || f[0] == "" {
		return Event{}, ErrNoMatch
	}
	for _, c := range f[1:5] {
		if !allDigits(c) {
			return Event{}, ErrNoMatch
		}
	}
	if n == 5 {
		// Berkeley popper and early qpopper logged no client at all.
		return Event{}, &AddrError{Addr: "", Reason: "Stats line has no client address"}
	}
	return q.event(f[n-1], f[0])
}

func (q qpopper) event(addr, user string) (Event, error) {
	a, err := parseAddr(addr)
	if err != nil {
		return Event{}, err
	}
	return Event{Kind: Login, Addr: a, User: user, Daemon: q.Name()}, nil
}

// qpopperTrimWhence removes the " [pop_log.c:244]" source position that
// DEBUGGING builds append to every message.
func qpopperTrimWhence(s string) string {
	if !strings.HasSuffix(s, "]") {
		return s
	}
	open := strings.LastIndex(s, " [")
	if open < 0 {
		return s
	}
	file, line, ok := strings.Cut(s[open+2:len(s)-1], ":")
	if !ok || file == "" || strings.IndexByte(file, ' ') >= 0 || !allDigits(line) {
		return s
	}
	return s[:open]
}
