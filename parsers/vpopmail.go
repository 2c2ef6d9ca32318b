package parsers

import "strings"

// vpopmail recognises the success lines of vchkpw, the checkpassword
// program of vpopmail behind qmail-popup (and some IMAP servers), such as
// this line in vpopmail 5.4's format (vchkpw.c):
//
//	vpopmail[939]: vchkpw-pop3: (PLAIN) login success alice@example.org:192.0.2.10
//
// vchkpw logs successes only when built with --enable-logging=y or v
// (ENABLE_LOGGING 1 or 4). The prefix names the local port: vchkpw-pop3
// (110), -pop3s (995), -imap (143), -imaps (993), vchkpw-<port> otherwise.
// vchkpw-smtp, -smtps and -submission are SMTP AUTH, and vchkpw-webmail is
// the webmail on 127.0.0.1: neither says where a mail client is. System
// users log "system password login success alice:192.0.2.10"; older
// releases logged "vchkpw: login success u@d:ip" and "vchkpw: login [u] from ip".
type vpopmail struct{}

// Name implements Parser.
func (vpopmail) Name() string { return "vpopmail" }

// Programs implements Parser. LOG_NAME is "vpopmail" unless changed at build
// time; some packages use "vchkpw".
func (vpopmail) Programs() []string { return []string{"vpopmail", "vchkpw"} }

// Parse implements Parser.
func (v vpopmail) Parse(m Message) (Event, error) {
	name, msg, ok := strings.Cut(m.Text, ": ")
	if !ok || !vpopmailGrantingName(name) {
		return Event{}, ErrNoMatch
	}
	// Every failure ("password fail", "vpopmail user not found", "null
	// password given", "pop access denied", "invalid user/domain
	// characters") starts differently; the user name comes only after the
	// success words, so it cannot supply them.
	if rest, ok := strings.CutPrefix(msg, "system password login success "); ok {
		// A system user name is an /etc/passwd entry: no ':' in it.
		user, addr, ok := strings.Cut(rest, ":")
		if !ok || user == "" {
			return Event{}, &AddrError{Addr: rest, Reason: "login line has no :address"}
		}
		return v.event(addr, user)
	}
	if rest, ok := strings.CutPrefix(msg, "login ["); ok && name == "vchkpw" {
		return v.oldLogin(rest)
	}
	if strings.HasPrefix(msg, "(") {
		// "(PLAIN) ", "(APOP) ", "(CRAM-MD5) "
		end := strings.Index(msg, ") ")
		if end < 2 || strings.IndexByte(msg[:end], ' ') >= 0 {
			return Event{}, ErrNoMatch
		}
		msg = msg[end+2:]
	}
	rest, ok := strings.CutPrefix(msg, "login success ")
	if !ok {
		return Event{}, ErrNoMatch
	}
	// "user@domain:address". parse_email() splits the login name at its
	// first '@' and the domain must exist, so the user holds no '@' and the
	// domain neither '@' nor ':'. Splitting after "@domain:" keeps IPv6
	// addresses whole and a ':' in the user name harmless.
	at := strings.IndexByte(rest, '@')
	if at < 0 {
		return Event{}, &AddrError{Addr: rest, Reason: "login line has no user@domain"}
	}
	if strings.IndexByte(rest[at+1:], '@') >= 0 {
		return Event{}, &AddrError{Addr: rest, Reason: "login line has more than one @ (user name injection?)"}
	}
	domain, addr, ok := strings.Cut(rest[at+1:], ":")
	if !ok || domain == "" || at == 0 {
		return Event{}, &AddrError{Addr: rest, Reason: "login line has no user@domain:address"}
	}
	return v.event(addr, rest[:at+1+len(domain)])
}

// oldLogin reads the pre-5.x "login [user] from address".
func (v vpopmail) oldLogin(rest string) (Event, error) {
	const from = "] from "
	i := strings.LastIndex(rest, from)
	if i < 0 {
		return Event{}, ErrNoMatch
	}
	if strings.Count(rest, from) > 1 {
		return Event{}, &AddrError{Addr: rest[i+len(from):], Reason: `"] from" appears more than once (user name injection?)`}
	}
	return v.event(rest[i+len(from):], rest[:i])
}

func (v vpopmail) event(addr, user string) (Event, error) {
	a, err := parseAddr(addr)
	if err != nil {
		return Event{}, err
	}
	return Event{Kind: Login, Addr: a, User: user, Daemon: v.Name()}, nil
}

// vpopmailGrantingName reports whether a vchkpw log name is a POP or IMAP
// login. vchkpw-<port> is any port vchkpw has no name for; it treats those
// as POP unless the program it runs next looks like SMTP AUTH (/bin/true)
// or IMAP, which the log name does not show, so they are taken as POP.
func vpopmailGrantingName(name string) bool {
	if name == "vchkpw" {
		return true
	}
	proto, ok := strings.CutPrefix(name, "vchkpw-")
	if !ok {
		return false
	}
	switch proto {
	case "pop3", "pop3s", "imap", "imaps":
		return true
	}
	return allDigits(proto)
}
