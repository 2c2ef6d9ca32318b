// Package parsers turns one syslog message from a POP3/IMAP daemon into a
// login (or logout) event. Parsers are pure functions of the message: they
// neither log nor read a clock, so the same line always gives the same answer
// in the daemon, in `relaygate parse` and in tests.
package parsers

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Message is one syslog message with its envelope already split off.
// Parsers decide on Program and Text only; the raw line is never searched,
// so text a user controls (a user name, a failure reason) cannot fake a tag.
type Message struct {
	Host    string // syslog HOSTNAME, for logs and two-line correlation
	Program string // RFC 3164 TAG without "[pid]", or RFC 5424 APP-NAME
	PID     string // RFC 3164 "[pid]" or RFC 5424 PROCID; may be empty
	Text    string // everything after "tag[pid]: "
}

// Kind says what an event means for the grant table.
type Kind uint8

const (
	// Login is a successful POP3/IMAP authentication: the address may relay.
	Login Kind = iota + 1
	// Logout ends a session a daemon reported; it never grants by itself.
	// Addr may be invalid when the daemon logs only the session id (Dovecot).
	Logout
	// Connect is the address line of a two-line daemon ("Session from
	// 192.0.2.10"). It grants nothing by itself: a Correlator remembers it
	// for the Auth line of the same host, program and PID.
	Connect
	// Auth is the success line of a two-line daemon, without an address.
	Auth
	// Fail is a two-line daemon's failure or end-of-process line: the
	// Correlator forgets the Connect it had for that process.
	Fail
)

func (k Kind) String() string {
	switch k {
	case Login:
		return "login"
	case Logout:
		return "logout"
	case Connect:
		return "connect"
	case Auth:
		return "auth"
	case Fail:
		return "fail"
	}
	return "unknown"
}

// Event is what a parser found in a message.
type Event struct {
	Kind    Kind
	Addr    netip.Addr // valid, unmapped and grantable (see parseAddr)
	User    string     // for logs only; never a map key
	Daemon  string     // the parser's Name()
	Session string     // daemon session id where one is logged, else ""
}

// ErrNoMatch means the message is not an event of this parser. It is the
// common case (most of a mail log is noise) and is counted, never logged.
var ErrNoMatch = errors.New("no match")

// AddrError means a message has a daemon's success shape but the address in
// it cannot be granted. It is not "no match", so callers can count and
// explain it.
//
// Every Reason is written one way: a phrase about the line or its address
// ("ip= is not bracketed", "login line has no rip element"), without the
// daemon's name, since whoever reports the error knows which parser it
// asked (Attempt.Parser, the fixture's file) and a prefix would say it twice.
type AddrError struct {
	Addr   string // the address text as logged
	Reason string
}

func (e *AddrError) Error() string {
	return "address " + quoteForError(e.Addr) + ": " + e.Reason
}

// Parser recognises the messages of one mail daemon.
type Parser interface {
	// Name is the daemon name used in events, flags and logs ("dovecot").
	Name() string
	// Programs lists the lower-case syslog program tags the daemon logs under.
	// Through a Set, Parse is only ever called with one of them, lower-cased.
	Programs() []string
	// Parse returns the event in m, ErrNoMatch, or an *AddrError.
	Parse(m Message) (Event, error)
}

// builtin returns a new instance of every built-in parser. Its order is
// DISPATCH PRIORITY: where parsers share a program tag (imapd: courier,
// cyrus, uw; pop3d: courier, cyrus, gnu-pop3d; imaps and pop3s: cyrus, uw)
// a Set tries them in this order, the first event wins, and when none
// matches the first refusal is the one reported. The daemons' lines on a
// shared tag do not overlap today (TestSetSharedTags), so the order is a
// tie-break; TestDispatchPriority pins it, and a parser added on a shared
// tag must be placed deliberately. SelectBuiltin keeps this order, and
// Attempts reports in it.
func builtin() []Parser {
	return []Parser{
		Dovecot{}, courier{}, cyrus{}, uw{},
		qpopper{}, vmPop3d{}, popa3d{}, solidPop3d{}, gnuPop3d{},
		teapop{}, tpop3d{}, vpopmail{}, perdition{}, zimbra{}, appleMail{}, cucipop{},
	}
}

// SelectBuiltin returns the built-in parsers named in names, in builtin's
// order (dispatch priority, whatever the order of names); "all" selects
// every one. An unknown name is an error that lists the
// known ones.
func SelectBuiltin(names []string) ([]Parser, error) {
	all := builtin()
	want := make(map[string]bool, len(names))
	for _, n := range names {
		if n == "all" {
			return all, nil
		}
		want[n] = true
	}
	var out []Parser
	for _, p := range all {
		if want[p.Name()] {
			out = append(out, p)
			delete(want, p.Name())
		}
	}
	for n := range want {
		known := make([]string, len(all))
		for i, p := range all {
			known[i] = p.Name()
		}
		return nil, fmt.Errorf("unknown daemon %q (known: all, %s)", n, strings.Join(known, ", "))
	}
	return out, nil
}

// Set dispatches a message to the parsers registered for its program tag, so
// that a line from sshd or postfix/smtpd is never even looked at by a POP/IMAP
// parser, and no regular expression runs for the bulk of a mail log.
type Set struct {
	byProgram map[string][]Parser
	parsers   []Parser
	longest   int // length of the longest tag in byProgram
}

// NewSet builds a dispatcher over ps. Several parsers may share a tag (Courier
// and UW both log as "imapd"); they are tried in the order given.
func NewSet(ps ...Parser) *Set {
	s := &Set{byProgram: make(map[string][]Parser), parsers: ps}
	for _, p := range ps {
		for _, prog := range p.Programs() {
			prog = normalizeProgram(prog)
			s.byProgram[prog] = append(s.byProgram[prog], p)
			s.longest = max(s.longest, len(prog))
		}
	}
	return s
}

// Parsers returns the parsers in the set, in dispatch order.
func (s *Set) Parsers() []Parser { return s.parsers }

// Daemons lists the daemon names the set's events can carry: each
// built-in parser's name and each rule's daemon, once each, in set order.
func (s *Set) Daemons() []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range s.parsers {
		name := p.Name()
		if r, ok := p.(interface{ Daemon() string }); ok {
			name = r.Daemon()
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

// Knows reports whether any parser in the set handles program.
func (s *Set) Knows(program string) bool {
	_, ok := s.byProgram[normalizeProgram(program)]
	return ok
}

// KnowsBytes is Knows for a program tag still in a receive buffer; it does
// not allocate, so messages of programs no parser handles (most of a mail
// log) can be dropped before any string is made.
func (s *Set) KnowsBytes(program []byte) bool {
	var lower [64]byte
	if len(program) > len(lower) {
		// Only a custom rule can name a tag this long; such lines are
		// rare enough to pay for one string.
		return len(program) <= s.longest && s.Knows(string(program))
	}
	for i, c := range program {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	_, ok := s.byProgram[string(lower[:len(program)])]
	return ok
}

// parse returns the first event any parser for m's program finds. An
// *AddrError is returned only if no parser produced an event.
//
// Program tags are compared without regard to ASCII case, everywhere: the
// tag is the sender's text as much as the message is (anyone who can send a
// line can send any tag), so case protects nothing, while a daemon or relay
// that writes "Dovecot" or "IMAPD" must not be missed. Parsers therefore see
// m.Program in lower case and compare it with their lower-case tags.
func (s *Set) parse(m Message) (Event, error) {
	m.Program = normalizeProgram(m.Program)
	candidates := s.byProgram[m.Program]
	var firstErr error
	for _, p := range candidates {
		ev, err := p.Parse(m)
		if err == nil {
			return ev, nil
		}
		if !errors.Is(err, ErrNoMatch) && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return Event{}, firstErr
	}
	return Event{}, ErrNoMatch
}

// Attempt is what one parser made of a message.
type Attempt struct {
	Parser string
	Event  Event
	Err    error // nil, "no match" (ErrNoMatch) or an *AddrError
}

// Attempts runs every parser registered for m's program and reports each
// result, for `relaygate parse --explain`. It is empty when no parser
// handles the program.
func (s *Set) Attempts(m Message) []Attempt {
	var out []Attempt
	m.Program = normalizeProgram(m.Program)
	for _, p := range s.byProgram[m.Program] {
		ev, err := p.Parse(m)
		out = append(out, Attempt{Parser: p.Name(), Event: ev, Err: err})
	}
	return out
}

// normalizeProgram folds ASCII upper case only, as KnowsBytes does, so that
// Knows, KnowsBytes, Parse and Attempts agree on every tag (strings.ToLower
// would also fold the Kelvin sign to 'k').
func normalizeProgram(p string) string {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c >= 'A' && c <= 'Z' {
			b := []byte(p)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return p
}

func quoteForError(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.ToValidUTF8(quoteASCII(s), "?")
}

func quoteASCII(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '"' || r == '\\' {
			b.WriteString("\\x")
			const hex = "0123456789abcdef"
			b.WriteByte(hex[byte(r)>>4])
			b.WriteByte(hex[byte(r)&0xf])
			continue
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// allDigits reports whether s is a non-empty run of ASCII digits (a PID, a
// port, a line number).
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
