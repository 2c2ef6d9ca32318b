package parsers

import "strings"

// zimbra recognises the IMAP and POP3 login lines of the Zimbra mailbox
// server's mailbox.log (log4j), forwarded through syslog, such as
//
//	mailboxlog: 2018-09-18 00:21:18,787 INFO  [ImapServer-138] [name=alice@example.org;ip=10.0.0.5;oip=192.0.2.10;via=192.0.2.10(nginx/1.2.0-zimbra);ua=Zimbra/8.6.0_GA_1229;] imap - user alice@example.org authenticated, mechanism=LOGIN
//
// The message is ImapHandler's and Pop3Handler's "user %s authenticated,
// mechanism=%s[ [TLS]]"; the [name=...;ip=...;] block is ZimbraLog's
// context. Clients reach the mailbox server through the nginx proxy, so
// ip= is the proxy and oip= the client. Granting ip= would open the relay
// to everyone behind the proxy: a login without oip= is refused.
type zimbra struct{}

// Name implements Parser.
func (zimbra) Name() string { return "zimbra" }

// Programs implements Parser: the tags sites give mailbox.log when they
// forward it (rsyslog imfile and the like).
func (zimbra) Programs() []string { return []string{"mailboxlog", "zimbra", "mailbox"} }

const zimbraAuthenticated = " authenticated, mechanism="

// Parse implements Parser.
func (z zimbra) Parse(m Message) (Event, error) {
	text := m.Text
	// mailbox.log is mostly other traffic: one substring search drops it
	// before the context block is walked.
	if !strings.Contains(text, zimbraAuthenticated) {
		return Event{}, ErrNoMatch
	}
	// The log4j date and time ("2018-09-18 00:21:18,787 ") are there when
	// the file is forwarded line by line.
	if text != "" && text[0] >= '0' && text[0] <= '9' {
		_, text, _ = strings.Cut(text, " ")
		_, text, _ = strings.Cut(text, " ")
	}
	level, text, ok := strings.Cut(text, " ")
	if !ok || level != "INFO" {
		return Event{}, ErrNoMatch
	}
	text = strings.TrimLeft(text, " ") // %-5p pads INFO with a space
	if !strings.HasPrefix(text, "[") {
		return Event{}, ErrNoMatch
	}
	end := strings.IndexByte(text, ']') // the thread: ImapServer-138, Pop3SSLServer-4
	if end < 0 {
		return Event{}, ErrNoMatch
	}
	text, ok = strings.CutPrefix(text[end+1:], " [")
	if !ok {
		return Event{}, ErrNoMatch
	}
	ctx, ok := readZimbraContext(text)
	if !ok {
		return Event{}, ErrNoMatch
	}
	text, ok = strings.CutPrefix(text[ctx.end:], " ")
	if !ok {
		return Event{}, ErrNoMatch
	}
	category, msg, ok := strings.Cut(text, " - ")
	if !ok || (category != "imap" && category != "pop") {
		return Event{}, ErrNoMatch
	}
	// "authentication failed for [u] (...)" and everything else the imap
	// and pop loggers write start differently.
	msg, ok = strings.CutPrefix(msg, "user ")
	if !ok {
		return Event{}, ErrNoMatch
	}
	i := strings.Index(msg, zimbraAuthenticated)
	if i <= 0 || strings.IndexByte(msg[:i], ' ') >= 0 {
		return Event{}, ErrNoMatch
	}
	ev := Event{Kind: Login, User: msg[:i], Daemon: z.Name()}
	if !ctx.hasOIP {
		return Event{}, &AddrError{Addr: ctx.ip, Reason: "login has no oip= (ip= is the proxy, never the client)"}
	}
	a, err := parseAddr(ctx.oip)
	if err != nil {
		return Event{}, err
	}
	ev.Addr = a
	return ev, nil
}

type zimbraContext struct {
	ip, oip string
	hasOIP  bool
	end     int // offset just after the closing ']'
}

// readZimbraContext walks "key=value;key=value;]" as ZimbraLog.encodeArg
// writes it: a ';' inside a value is doubled. Values such as ua= (the IMAP
// ID the client sent) are client text and may hold "]" or "oip=", so the
// block is read with that escaping, never searched.
func readZimbraContext(s string) (zimbraContext, bool) {
	var c zimbraContext
	i := 0
	for {
		if i >= len(s) {
			return c, false
		}
		if s[i] == ']' {
			c.end = i + 1
			return c, true
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq <= 0 {
			return c, false
		}
		key := s[i : i+eq]
		for j := 0; j < len(key); j++ {
			if k := key[j]; k < 'a' || k > 'z' {
				return c, false
			}
		}
		i += eq + 1
		start := i
		for {
			semi := strings.IndexByte(s[i:], ';')
			if semi < 0 {
				return c, false
			}
			i += semi
			if i+1 < len(s) && s[i+1] == ';' {
				i += 2
				continue
			}
			break
		}
		val := s[start:i]
		i++ // the terminating ';'
		switch key {
		case "ip":
			c.ip = val
		case "oip":
			if c.hasOIP {
				return c, false
			}
			c.oip, c.hasOIP = val, true
		}
	}
}
