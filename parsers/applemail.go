package parsers

import "strings"

// AppleMail recognises the IMAP login line of the Apple Mail Server of
// Mac OS X Server 10.0 to 10.2 (AppleMailServer, before Apple moved to
// Cyrus and later Dovecot), in the shape pop-before-smtp matches in
// AppleMailServer.IMAP.log:
//
//	AppleMailServer: IMAP User "alice" log on successful from 192.0.2.10
//
// The log file puts a date and other fields before "IMAP User", so the
// literal may come after a prefix. No POP line of this server is known.
type AppleMail struct{}

// Name implements Parser.
func (AppleMail) Name() string { return "apple-mail" }

// Programs implements Parser.
func (AppleMail) Programs() []string { return []string{"applemailserver", "mailservice"} }

const (
	appleMailUser = `IMAP User "`
	appleMailOK   = `" log on successful from `
)

// Parse implements Parser.
func (a AppleMail) Parse(m Message) (Event, error) {
	i := strings.Index(m.Text, appleMailUser)
	if i < 0 || (i > 0 && m.Text[i-1] != ' ') {
		return Event{}, ErrNoMatch
	}
	rest := m.Text[i+len(appleMailUser):]
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
	ip, err := ParseAddr(addr)
	if err != nil {
		return Event{}, err
	}
	return Event{Kind: Login, Addr: ip, User: user, Daemon: a.Name()}, nil
}
