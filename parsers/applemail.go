package parsers

import "strings"

// appleMail recognises the IMAP login line of the Apple Mail Server of
// Mac OS X Server 10.0 to 10.2 (AppleMailServer, before Apple moved to
// Cyrus and later Dovecot), in the shape pop-before-smtp matches in
// AppleMailServer.IMAP.log:
//
//	AppleMailServer: IMAP User "alice" log on successful from 192.0.2.10
//
// The log file puts its own date, and sometimes the process id, before
// "IMAP User": "Mar 21 2003 10:15:05 [311] ". The success shape starts at
// the message or right after exactly that prefix, never after other text,
// which could be a failure line quoting a user name. No POP line of this
// server is known.
type appleMail struct{}

// Name implements Parser.
func (appleMail) Name() string { return "apple-mail" }

// Programs implements Parser.
func (appleMail) Programs() []string { return []string{"applemailserver", "mailservice"} }

const (
	appleMailUser = `IMAP User "`
	appleMailOK   = `" log on successful from `
)

// Parse implements Parser.
func (a appleMail) Parse(m Message) (Event, error) {
	rest, ok := strings.CutPrefix(cutAppleMailPrefix(m.Text), appleMailUser)
	if !ok {
		return Event{}, ErrNoMatch
	}
	j := strings.LastIndex(rest, appleMailOK)
	if j < 0 {
		return Event{}, ErrNoMatch
	}
	// The user name is quoted but not escaped. The address must end the
	// line, so a name carrying the success words is followed by its own
	// closing quote and never parses as an address; a second copy of them
	// is refused outright.
	if strings.Count(rest, appleMailOK) > 1 {
		return Event{}, &AddrError{Addr: rest[j+len(appleMailOK):], Reason: `"log on successful" appears more than once (user name injection?)`}
	}
	user, addr := rest[:j], rest[j+len(appleMailOK):]
	ip, err := parseAddr(addr)
	if err != nil {
		return Event{}, err
	}
	return Event{Kind: Login, Addr: ip, User: user, Daemon: a.Name()}, nil
}

// cutAppleMailPrefix removes the log file's "Mon D YYYY HH:MM:SS " and an
// optional "[pid] " from the front of s, if s starts with exactly that.
func cutAppleMailPrefix(s string) string {
	f := s
	mon, f, ok := strings.Cut(f, " ")
	if !ok || len(mon) != 3 {
		return s
	}
	for i := 0; i < len(mon); i++ {
		if c := mon[i] | 0x20; c < 'a' || c > 'z' {
			return s
		}
	}
	f = strings.TrimPrefix(f, " ") // a space-padded day
	day, f, ok := strings.Cut(f, " ")
	if !ok || len(day) > 2 || !allDigits(day) {
		return s
	}
	year, f, ok := strings.Cut(f, " ")
	if !ok || len(year) != 4 || !allDigits(year) {
		return s
	}
	clock, f, ok := strings.Cut(f, " ")
	if !ok || len(clock) != 8 || clock[2] != ':' || clock[5] != ':' ||
		!allDigits(clock[:2]) || !allDigits(clock[3:5]) || !allDigits(clock[6:]) {
		return s
	}
	if rest, ok := strings.CutPrefix(f, "["); ok {
		if pid, after, ok := strings.Cut(rest, "] "); ok && allDigits(pid) {
			f = after
		}
	}
	return f
}
