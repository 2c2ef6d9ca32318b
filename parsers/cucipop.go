package parsers

import "strings"

// cucipop recognises the session statistics line of cucipop, the Cubic
// Circle POP3 daemon, which it logs when an authenticated session ends
// (the shape of Daniel Roesen's sample in pop-before-smtp):
//
//	cucipop[4711]: alice 192.0.2.10 3, 0 (0), 2 (4096)
//
// Only the shape of the counters after the address is known, not their
// meaning, so all of them are checked. cucipop splits commands at spaces,
// so the user name is one word; an INET6 build writes the address with
// getnameinfo.
type cucipop struct{}

// Name implements Parser.
func (cucipop) Name() string { return "cucipop" }

// Programs implements Parser.
func (cucipop) Programs() []string { return []string{"cucipop"} }

// Parse implements Parser.
func (c cucipop) Parse(m Message) (Event, error) {
	// user, address, "N,", "N", "(N),", "N", "(N)": exactly seven words.
	var f [7]string
	rest := m.Text
	n := 0
	for rest != "" && n < len(f) {
		f[n], rest, _ = strings.Cut(rest, " ")
		n++
	}
	if rest != "" || n != len(f) || f[0] == "" {
		return Event{}, ErrNoMatch
	}
	if !cucipopNumber(f[2], "", ",") || !cucipopNumber(f[3], "", "") ||
		!cucipopNumber(f[4], "(", "),") || !cucipopNumber(f[5], "", "") ||
		!cucipopNumber(f[6], "(", ")") {
		return Event{}, ErrNoMatch
	}
	a, err := parseAddr(f[1])
	if err != nil {
		return Event{}, err
	}
	return Event{Kind: Login, Addr: a, User: f[0], Daemon: c.Name()}, nil
}

// cucipopNumber reports whether s is prefix, decimal digits, suffix.
func cucipopNumber(s, prefix, suffix string) bool {
	s, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return false
	}
	s, ok = strings.CutSuffix(s, suffix)
	return ok && allDigits(s)
}
