package parsers

import "strings"

// Dovecot recognises the login lines of Dovecot 1.x to 2.4, such as this one
// from Dovecot 2.3.19 on Debian 12:
//
//	dovecot: pop3-login: Login: user=<alice>, method=PLAIN, rip=127.0.0.2, lip=127.0.0.1, mpid=406, session=<5tSnXMtgQ5p/AAAC>
//
// Dovecot 2.4 says "Logged in:" instead of "Login:"; 1.x logs under the tags
// imap-login and pop3-login, sometimes with an "Info: " prefix. Only
// imap-login and pop3-login lines grant. The element list after the verdict
// is read by the site's login_log_format_elements (NewDovecot); the zero
// value reads Dovecot's default.
type Dovecot struct {
	format *dovecotFormat
}

// Name implements Parser.
func (Dovecot) Name() string { return "dovecot" }

// Programs implements Parser.
func (Dovecot) Programs() []string {
	return []string{"dovecot", "imap-login", "pop3-login"}
}

// Parse implements Parser.
func (d Dovecot) Parse(m Message) (Event, error) {
	text := strings.TrimPrefix(m.Text, "Info: ")
	if strings.HasPrefix(text, "imap(") || strings.HasPrefix(text, "pop3(") {
		if m.Program != "dovecot" {
			return Event{}, ErrNoMatch
		}
		return d.sessionEnd(text)
	}
	switch m.Program {
	case "dovecot":
		// Only the login processes decide success, and only for the mail
		// protocols: submission is SMTP AUTH already, and a sieve login says
		// nothing about who may send mail.
		var ok bool
		if text, ok = strings.CutPrefix(text, "imap-login: "); !ok {
			if text, ok = strings.CutPrefix(text, "pop3-login: "); !ok {
				return Event{}, ErrNoMatch
			}
		}
		text = strings.TrimPrefix(text, "Info: ")
	case "imap-login", "pop3-login":
	default:
		return Event{}, ErrNoMatch
	}
	// The verdict is the word right after the process prefix. Failure lines
	// carry the same elements (and a reason the client may shape), so they
	// must never reach the element list.
	elems, ok := strings.CutPrefix(text, "Login: ")
	if !ok {
		if elems, ok = strings.CutPrefix(text, "Logged in: "); !ok {
			return Event{}, ErrNoMatch
		}
	}
	return d.login(elems)
}

// login reads the element list of a success line by the site's
// login_log_format_elements grammar (see dovecotFormat).
func (d Dovecot) login(elems string) (Event, error) {
	f := d.format
	if f == nil {
		f = defaultDovecotFormat
	}
	sum, err := f.match(elems)
	switch {
	case err != nil:
		return Event{}, &AddrError{Addr: "", Reason: "login line has too many readings (user name injection?)"}
	case sum.n == 0:
		return Event{}, &AddrError{Addr: "", Reason: "login line is not what login_log_format_elements " + quoteForError(f.text) + " writes (a different format? give it with -dovecot-log-format)"}
	case sum.anon:
		// ANONYMOUS logs in as anonymous_username without any
		// credential, so it proves nothing about the client.
		return Event{}, ErrNoMatch
	case sum.tainted:
		return Event{}, &AddrError{Addr: sum.first.rip, Reason: "the user name contains " + quoteForError(f.ripKey) + " (user name injection?)"}
	case sum.ripMixed:
		return Event{}, &AddrError{Addr: sum.first.rip, Reason: "the user name can be read as other elements, which changes the rip (user name injection?)"}
	case sum.first.rip == "":
		return Event{}, &AddrError{Addr: "", Reason: "login line has no rip element"}
	}
	a, err := parseAddr(sum.first.rip)
	if err != nil {
		return Event{}, err
	}
	ev := Event{Kind: Login, Addr: a, User: sum.first.user, Daemon: d.Name()}
	if !sum.sessMixed {
		ev.Session = sum.first.session
	}
	return ev, nil
}

var defaultDovecotFormat = mustDovecotFormat(DefaultDovecotLogFormat)

func mustDovecotFormat(s string) *dovecotFormat {
	f, err := parseDovecotLogFormat(s)
	if err != nil {
		panic(err) // a constant; TestDefaultDovecotFormat covers it
	}
	return f
}

// NewDovecot returns a Dovecot parser that reads login lines by the
// login_log_format_elements format (DefaultDovecotLogFormat when empty).
func NewDovecot(format string) (Dovecot, error) {
	if strings.TrimSpace(format) == "" {
		return Dovecot{}, nil
	}
	f, err := parseDovecotLogFormat(format)
	if err != nil {
		return Dovecot{}, err
	}
	return Dovecot{format: f}, nil
}

// sessionEnd reads the mail process's last line of a session,
//
//	imap(alice)<4711><kX3b8Qp7aMDAAAIK>: Disconnected: Logged out in=123 out=456
//
// (mail_log_prefix "%s(%u)<%{pid}><%{session}>: ", the default since 2.3).
// It has no address: the session id ties it to its login line.
func (d Dovecot) sessionEnd(text string) (Event, error) {
	// The user name may contain anything, ">: " and a "<pid><session>"
	// included, and so may the message, so every ">: " that can end the
	// prefix is tried: the split Dovecot made is among them, and a line
	// whose splits name different sessions ends none.
	ev, readings, err := readEverySplit(text, ">: ", func(head, msg string) (string, Event, bool) {
		e, ok := dovecotSessionEnd(head, msg)
		return e.Session, e, ok
	})
	if err != nil || readings == 0 {
		return Event{}, ErrNoMatch
	}
	ev.Daemon = d.Name()
	return ev, nil
}

// dovecotSessionEnd reads one split of a mail process line into its prefix
// "imap(user)<pid><session" and its message.
func dovecotSessionEnd(head, msg string) (Event, bool) {
	sessOpen := strings.LastIndexByte(head, '<')
	if sessOpen < 2 || head[sessOpen-1] != '>' {
		return Event{}, false
	}
	session := head[sessOpen+1:]
	pidOpen := strings.LastIndexByte(head[:sessOpen-1], '<')
	if pidOpen < 0 || !allDigits(head[pidOpen+1:sessOpen-1]) || pidOpen+1 == sessOpen-1 {
		return Event{}, false
	}
	userPart := head[:pidOpen]
	if session == "" || !strings.HasSuffix(userPart, ")") {
		return Event{}, false
	}
	user := userPart[len("imap(") : len(userPart)-1]
	if !strings.HasPrefix(msg, "Disconnected") && !strings.HasPrefix(msg, "Connection closed") && !strings.HasPrefix(msg, "Logged out") {
		return Event{}, false
	}
	return Event{Kind: Logout, User: user, Session: session}, true
}
