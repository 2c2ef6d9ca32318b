// Package syslogmsg is the syslog message format as relaygate reads it:
// the envelope (RFC 3164, RFC 5424 and plain log-file lines) split into
// host, program, PID, text and STRUCTURED-DATA, the allocation-free fast
// path that finds the program tag before anything is copied, and the PRI.
// It knows no sockets and no framing: the receiver feeds it messages off
// the wire, and `relaygate parse` lines of a file, and both get the same
// split (see docs/DESIGN.md).
package syslogmsg

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"gopkg.in/mcuadros/go-syslog.v2/format"
)

// Envelope is the part of a syslog message the parsers decide on.
type Envelope struct {
	Format  string // "rfc3164", "rfc5424", or "raw" when no header could be read
	Host    string
	Program string
	PID     string
	Text    string
	// SD is an RFC 5424 message's STRUCTURED-DATA exactly as sent, "" for
	// NILVALUE or RFC 3164. Read it with ParseStructuredData, never by hand.
	SD string
}

// ParseEnvelope splits one syslog message (without transport framing) into
// host, program, PID and text. It accepts rsyslog's wire forms (RFC 3164 with
// <PRI>, RFC 5424), plain log-file lines without <PRI>, and RFC 3339
// timestamps in 3164-style lines (rsyslog's high-precision format).
//
// RFC 5424 is read by spans5424 alone, strictly: a message shaped like RFC
// 5424 that it refuses (malformed STRUCTURED-DATA above all) is an error,
// never re-read by a more tolerant splitter. For RFC 3164, go-syslog
// v2.3.0's parser reads what the fast path does not; its known panics are
// recovered here and the message falls back to a tolerant splitter instead
// of being lost. The error is non-nil only when no program tag could be
// read; the envelope is then filled as far as possible.
func ParseEnvelope(raw []byte) (Envelope, error) {
	raw = TrimTrailingControl(raw)
	if len(raw) == 0 {
		return Envelope{Format: "raw"}, errEmpty
	}
	if env, ok := fastEnvelope(raw); ok {
		return env, nil
	}
	return slowEnvelope(raw)
}

// slowEnvelope parses what the fast path does not take (and, in its fuzz
// test, what it does, to check the two agree): RFC 5424 by spans5424 only,
// RFC 3164 by go-syslog, then a split of our own.
func slowEnvelope(raw []byte) (Envelope, error) {
	if v, pri, ok := versionAfterPRI(raw); ok {
		// Looks like RFC 5424 (go-syslog's Automatic would think so too):
		// only spans5424 reads it, and what it refuses is refused, never
		// handed to go-syslog or guessed at by splitLoose.
		if pri <= 191 && len(raw) > v+2 && raw[v] == '1' && raw[v+1] == ' ' {
			if sp, ok := spans5424(raw, v+2); ok {
				return sp.Envelope(raw), nil
			}
		}
		return Envelope{Format: "rfc5424"}, errBad5424
	}
	if end, pri := priEnd(raw); end > 0 && pri > 191 {
		// The fast path refuses it too: a header no syslog writes is
		// not guessed at, so both paths agree on what is a message.
		return Envelope{Format: "rfc3164"}, errBadPRI
	}
	parts, perr := safeParse(raw)
	var env Envelope
	if perr == nil {
		env = fromLogParts(parts, raw)
	}
	if env.Program == "" {
		// go-syslog failed, or fell back to putting the whole line in
		// content (unpadded day, RFC 3339 stamp, no PRI): split it ourselves.
		env = splitLoose(raw)
	}
	if hasControl(env.Host) {
		// A TAB or CR is no field separator in a syslog header: the
		// word holding it is one HOSTNAME, and a "tag:" after it would
		// be read from what is really another program's text
		// ("mx<TAB>sshd[1]: dovecot: ..."). No syslog daemon writes it.
		return Envelope{Format: env.Format}, errBadHost
	}
	if !utf8.ValidString(env.Text) {
		env.Text = strings.ToValidUTF8(env.Text, "\uFFFD")
	}
	if env.Program == "" {
		if perr != nil {
			return env, fmt.Errorf("syslog header: %w", perr)
		}
		return env, errNoProgram
	}
	return env, nil
}

var (
	errEmpty     = fmt.Errorf("empty message")
	errNoProgram = fmt.Errorf("no program tag")
	errBad5424   = fmt.Errorf("not a well-formed RFC 5424 message (header fields, STRUCTURED-DATA or VERSION)")
	errBadPRI    = fmt.Errorf("PRI over 191")
	errBadHost   = fmt.Errorf("control character in HOSTNAME")
)

// hasControl reports a C0 control character or DEL in s.
func hasControl[S string | []byte](s S) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

func safeParse(raw []byte) (parts format.LogParts, err error) {
	defer func() {
		if r := recover(); r != nil {
			// go-syslog v2.3.0 indexes past the end on "<13>" and on
			// "<13>Nov 21 10:00:00 host"; never let that reach the daemon.
			parts, err = nil, fmt.Errorf("go-syslog parser panic: %v", r)
		}
	}()
	// Automatic picks RFC 3164 or RFC 5424 per message.
	p := new(format.Automatic).GetParser(raw)
	if err := p.Parse(); err != nil {
		return nil, err
	}
	return p.Dump(), nil
}

func fromLogParts(parts format.LogParts, raw []byte) Envelope {
	if _, ok := parts["app_name"]; ok {
		// go-syslog's RFC 5424 reader; slowEnvelope never lets it run, and
		// its MSG is not to be trusted if it ever does.
		return Envelope{Format: "rfc5424"}
	}
	env := Envelope{
		Format:  "rfc3164",
		Host:    str(parts, "hostname"),
		Program: str(parts, "tag"),
		Text:    str(parts, "content"),
	}
	if env.Program != "" {
		pid, ok := tagBeforeContent(raw, env.Program, env.Text)
		if !ok || !validProgram(env.Program) {
			return Envelope{Format: "rfc3164"}
		}
		env.PID = pid
	}
	return env
}

func str(parts format.LogParts, key string) string {
	s, _ := parts[key].(string)
	return s
}

// tagBeforeContent checks go-syslog's RFC 3164 split against the bytes: its
// tag must be a word of its own followed by "[pid]:" or ":" and then its
// content, as syslog(3) writes it. go-syslog also takes a word followed by
// a space as the tag (after a doubled space where HOSTNAME was), which
// would make the first word of untagged text a program. It returns the PID
// go-syslog skips (its issue #52); two-line daemons need it to pair lines.
func tagBeforeContent(raw []byte, tag, content string) (pid string, ok bool) {
	head := bytes.TrimRight(raw, " ")
	if !bytes.HasSuffix(head, []byte(content)) {
		return "", false
	}
	head = bytes.TrimRight(head[:len(head)-len(content)], " ")
	if len(head) == 0 || head[len(head)-1] != ':' {
		return "", false
	}
	head = head[:len(head)-1]
	if len(head) > 0 && head[len(head)-1] == ']' {
		open := bytes.LastIndexByte(head, '[')
		if open < 0 || len(head)-open-2 > 20 {
			return "", false
		}
		pid = string(head[open+1 : len(head)-1])
		head = head[:open]
	}
	if !bytes.HasSuffix(head, []byte(tag)) || (len(head) > len(tag) && head[len(head)-len(tag)-1] != ' ') {
		return "", false
	}
	return pid, true
}

// validProgram rejects "tags" that are really the first word of an untagged
// message ("LOGIN,", "Nov"), so they can never be mistaken for a daemon.
func validProgram[P string | []byte](p P) bool {
	if len(p) == 0 || len(p) > 64 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == '/':
		default:
			return false
		}
	}
	return true
}

// splitLoose reads "[<PRI>][TIMESTAMP ][HOST ]TAG[[PID]]: TEXT" where the
// timestamp is RFC 3164 (day padded or not) or RFC 3339.
func splitLoose(raw []byte) Envelope {
	s := string(raw)
	env := Envelope{Format: "raw", Text: s}
	end, _ := priEnd(raw)
	s = skipTimestamp(s[end:])
	// Now "host tag[pid]: text" or "tag[pid]: text" (the local /dev/log form).
	first, rest, ok := strings.Cut(s, " ")
	if !ok {
		return env
	}
	if prog, pid, good := splitTag(first); good {
		env.Program, env.PID, env.Text = prog, pid, rest
		return env
	}
	second, text, ok := strings.Cut(rest, " ")
	if !ok {
		return env
	}
	if prog, pid, good := splitTag(second); good {
		env.Host, env.Program, env.PID, env.Text = first, prog, pid, text
	}
	return env
}

// splitTag accepts "prog:" or "prog[pid]:".
func splitTag(word string) (program, pid string, ok bool) {
	if !strings.HasSuffix(word, ":") {
		return "", "", false
	}
	word = word[:len(word)-1]
	if i := strings.IndexByte(word, '['); i > 0 && strings.HasSuffix(word, "]") {
		program, pid = word[:i], word[i+1:len(word)-1]
	} else {
		program = word
	}
	if !validProgram(program) {
		return "", "", false
	}
	return program, pid, true
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

func skipTimestamp(s string) string {
	if len(s) >= 15 {
		for _, m := range months {
			if strings.HasPrefix(s, m+" ") {
				rest := strings.TrimLeft(s[4:], " ")
				// day, then hh:mm:ss
				day, after, ok := strings.Cut(rest, " ")
				if ok && len(day) <= 2 && allDigits(day) && len(after) >= 8 && after[2] == ':' && after[5] == ':' {
					return strings.TrimLeft(after[8:], " ")
				}
				return s
			}
		}
	}
	// RFC 3339: 2026-11-21T10:00:00[.frac](Z|±hh:mm)
	if len(s) >= 20 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && allDigits(s[:4]) {
		if sp := strings.IndexByte(s, ' '); sp > 0 {
			return s[sp+1:]
		}
	}
	return s
}

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

// TrimTrailingControl drops what a sender may put after a message: the CR,
// LF or NUL of its framing and any other C0 control byte, none of which is
// ever part of the message. Every size limit is measured after it, so a
// message is accepted or refused alike on every transport.
func TrimTrailingControl(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] < 0x20) {
		b = b[:len(b)-1]
	}
	return b
}
