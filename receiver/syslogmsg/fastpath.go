package syslogmsg

import (
	"bytes"
	"unicode/utf8"
)

// Spans locates the parts of a well-formed message without copying them, so
// a caller can decide on the program before it pays for any string. Read
// them with ProgramBytes and Envelope.
type Spans struct {
	format                   string
	host, program, pid, text [2]int // [start, end) into the raw message
	// sd is RFC 5424 STRUCTURED-DATA as sent (escapes included), empty
	// for NILVALUE and for RFC 3164; ParseStructuredData reads it.
	sd [2]int
}

// ProgramBytes returns the program tag (valid while raw is).
func (s Spans) ProgramBytes(raw []byte) []byte { return raw[s.program[0]:s.program[1]] }

// Envelope copies the parts out of raw.
func (s Spans) Envelope(raw []byte) Envelope {
	env := Envelope{
		Format:  s.format,
		Host:    string(raw[s.host[0]:s.host[1]]),
		Program: string(raw[s.program[0]:s.program[1]]),
		PID:     string(raw[s.pid[0]:s.pid[1]]),
		Text:    string(raw[s.text[0]:s.text[1]]),
		SD:      string(raw[s.sd[0]:s.sd[1]]),
	}
	if !utf8.ValidString(env.Text) {
		env.Text = string(bytes.ToValidUTF8([]byte(env.Text), []byte("\uFFFD")))
	}
	return env
}

// fastEnvelope is ParseEnvelope for the two forms nearly every sender uses:
// rsyslog's traditional "<PRI>Mmm dd hh:mm:ss host tag[pid]: text" and RFC
// 5424. go-syslog's parsers cost microseconds and a dozen allocations a
// message; a busy log host sends tens of thousands of messages a second,
// nearly all of them from programs no parser handles.
// A 3164 message this does not fully recognise goes to the go-syslog path;
// RFC 5424 has only this reader (see spans5424).
func fastEnvelope(raw []byte) (Envelope, bool) {
	sp, ok := FastSpans(raw)
	if !ok {
		return Envelope{}, false
	}
	return sp.Envelope(raw), true
}

// FastSpans parses raw (without trailing newline) on the fast path.
func FastSpans(raw []byte) (Spans, bool) {
	if len(raw) > 0 && raw[0] != '<' {
		// A log-file line ("Nov 21 10:00:00 host tag[pid]: text"), as
		// `relaygate parse` reads them.
		return spans3164(raw, 0, false)
	}
	i, ok := skipPRI(raw)
	if !ok {
		return Spans{}, false
	}
	if len(raw) > i+2 && raw[i] == '1' && raw[i+1] == ' ' {
		return spans5424(raw, i+2)
	}
	return spans3164(raw, i, true)
}

// spans3164 reads from the timestamp on. withPRI says which slow path it
// stands in for: go-syslog's parser (which trims the text) for wire messages,
// the fallback splitter (which takes the text after ": " as it is) for
// log-file lines.
func spans3164(raw []byte, i int, withPRI bool) (Spans, bool) {
	// "Mmm dd hh:mm:ss " with a space-padded or two-digit day.
	const stampLen = len("Nov 21 10:00:00 ")
	if len(raw) < i+stampLen || raw[i+3] != ' ' {
		return Spans{}, false
	}
	month := monthIndex(raw[i : i+3])
	if month < 0 {
		return Spans{}, false
	}
	d1, d2 := raw[i+4], raw[i+5]
	if !(d1 == ' ' || isDigit(d1)) || !isDigit(d2) {
		return Spans{}, false
	}
	t := raw[i+7 : i+15]
	if raw[i+6] != ' ' || !isDigit(t[0]) || !isDigit(t[1]) || t[2] != ':' || !isDigit(t[3]) || !isDigit(t[4]) ||
		t[5] != ':' || !isDigit(t[6]) || !isDigit(t[7]) || raw[i+15] != ' ' {
		return Spans{}, false
	}
	if !validStamp3164(raw[i:i+15], month) {
		return Spans{}, false
	}
	i += stampLen
	sp := Spans{format: "rfc3164"}
	// The next word is the host, unless it ends in ':' and so already is
	// the tag (the local /dev/log form has no host), as go-syslog decides.
	sp2 := bytes.IndexByte(raw[i:], ' ')
	if sp2 < 0 {
		return Spans{}, false
	}
	word := i
	if raw[i+sp2-1] != ':' {
		sp.host = [2]int{i, i + sp2}
		word = i + sp2 + 1
		if hasControl(raw[i : i+sp2]) {
			return Spans{}, false // the slow path refuses it
		}
	}
	i = word
	for i < len(raw) && raw[i] != ' ' && raw[i] != ':' && raw[i] != '[' {
		i++
	}
	sp.program = [2]int{word, i}
	if i < len(raw) && raw[i] == '[' {
		i++
		start := i
		for i < len(raw) && isDigit(raw[i]) {
			i++
		}
		if i == start || i-start > 20 || i >= len(raw) || raw[i] != ']' {
			return Spans{}, false
		}
		sp.pid = [2]int{start, i}
		i++
	}
	if i >= len(raw) || raw[i] != ':' || !validProgram(raw[sp.program[0]:sp.program[1]]) {
		return Spans{}, false
	}
	i++
	if withPRI {
		sp.text = trimSpaces(raw, i, len(raw))
	} else {
		if i >= len(raw) || raw[i] != ' ' {
			return Spans{}, false
		}
		sp.text = [2]int{i + 1, len(raw)}
		sp.format = "raw"
	}
	if sp.host == [2]int{} {
		sp.host = [2]int{word, word}
	}
	return sp, true
}

// spans5424 reads an RFC 5424 message from its TIMESTAMP on (i is after
// "VERSION SP"). It is the only reader of RFC 5424 in relaygate, on the fast
// path and the slow: go-syslog v2.3.0 mis-delimits STRUCTURED-DATA (an
// escaped '"' or ']' inside a value ends it early, handing text from inside
// the SD to the parsers as MSG), so no RFC 5424 message ever goes to it.
// Anything outside the RFC 5424 grammar (section 6) is refused: a field that
// is not 1*N PRINTUSASCII within its limit, a bad TIMESTAMP, malformed SD,
// or anything but SP or the end after the SD.
func spans5424(raw []byte, i int) (Spans, bool) {
	// TIMESTAMP HOSTNAME APP-NAME PROCID MSGID and their limits.
	var f [5][2]int
	limits := [5]int{32, 255, 48, 128, 32}
	for n := range f {
		start := i
		for i < len(raw) && raw[i] > ' ' && raw[i] <= '~' {
			i++
		}
		if i == start || i-start > limits[n] || i >= len(raw) || raw[i] != ' ' {
			return Spans{}, false
		}
		f[n] = [2]int{start, i}
		i++
	}
	if ts := raw[f[0][0]:f[0][1]]; !(len(ts) == 1 && ts[0] == '-') && !isStamp5424(ts) {
		return Spans{}, false
	}
	sdEnd, ok := scanSD(raw, i)
	if !ok {
		return Spans{}, false
	}
	sd := [2]int{i, sdEnd}
	if sdEnd-i == 1 && raw[i] == '-' {
		sd = [2]int{i, i}
	}
	text := sdEnd
	if text < len(raw) {
		if raw[text] != ' ' {
			return Spans{}, false
		}
		text++
	}
	nilv := func(s [2]int) [2]int {
		if s[1]-s[0] == 1 && raw[s[0]] == '-' {
			return [2]int{s[0], s[0]}
		}
		return s
	}
	sp := Spans{format: "rfc5424", host: nilv(f[1]), program: nilv(f[2]), pid: nilv(f[3]), sd: sd}
	if !validProgram(raw[sp.program[0]:sp.program[1]]) {
		return Spans{}, false
	}
	if bytes.HasPrefix(raw[text:], []byte("\uFEFF")) {
		text += len("\uFEFF")
	}
	for text < len(raw) && raw[text] == ' ' {
		text++
	}
	sp.text = [2]int{text, len(raw)}
	return sp, true
}

func trimSpaces(raw []byte, i, j int) [2]int {
	for i < j && raw[i] == ' ' {
		i++
	}
	for j > i && raw[j-1] == ' ' {
		j--
	}
	return [2]int{i, j}
}

// monthIndex returns 0 for "Jan" to 11 for "Dec", -1 for anything else:
// one switch on the three bytes, where comparing with each name in turn
// took a third of `relaygate parse`'s time.
func monthIndex(b []byte) int {
	if len(b) != 3 {
		return -1
	}
	switch uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) {
	case 'J'<<16 | 'a'<<8 | 'n':
		return 0
	case 'F'<<16 | 'e'<<8 | 'b':
		return 1
	case 'M'<<16 | 'a'<<8 | 'r':
		return 2
	case 'A'<<16 | 'p'<<8 | 'r':
		return 3
	case 'M'<<16 | 'a'<<8 | 'y':
		return 4
	case 'J'<<16 | 'u'<<8 | 'n':
		return 5
	case 'J'<<16 | 'u'<<8 | 'l':
		return 6
	case 'A'<<16 | 'u'<<8 | 'g':
		return 7
	case 'S'<<16 | 'e'<<8 | 'p':
		return 8
	case 'O'<<16 | 'c'<<8 | 't':
		return 9
	case 'N'<<16 | 'o'<<8 | 'v':
		return 10
	case 'D'<<16 | 'e'<<8 | 'c':
		return 11
	}
	return -1
}

// daysIn is the longest each month can be (go-syslog parses without a year,
// and year 0 is a leap year).
var daysIn = [12]int{31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// validStamp3164 checks the values of "Mmm dd hh:mm:ss" (month m) as
// time.Stamp parsing does, so the fast path accepts exactly what go-syslog
// accepts.
func validStamp3164(b []byte, m int) bool {
	num := func(hi, lo byte) int {
		if hi == ' ' {
			hi = '0'
		}
		return int(hi-'0')*10 + int(lo-'0')
	}
	day := num(b[4], b[5])
	return m >= 0 && day >= 1 && day <= daysIn[m] &&
		num(b[7], b[8]) <= 23 && num(b[10], b[11]) <= 59 && num(b[13], b[14]) <= 59
}

// isStamp5424 accepts "2026-11-21T10:00:00[.frac](Z|+hh:mm|-hh:mm)".
func isStamp5424(b []byte) bool {
	const base = len("2026-11-21T10:00:00")
	if len(b) < base+1 {
		return false
	}
	for i, c := range b[:base] {
		switch i {
		case 4, 7:
			if c != '-' {
				return false
			}
		case 10:
			if c != 'T' {
				return false
			}
		case 13, 16:
			if c != ':' {
				return false
			}
		default:
			if !isDigit(c) {
				return false
			}
		}
	}
	two := func(i int) int { return int(b[i]-'0')*10 + int(b[i+1]-'0') }
	// The ranges go-syslog's RFC 5424 parser checks (it does not check the
	// day against the month).
	if m := two(5); m < 1 || m > 12 {
		return false
	}
	if d := two(8); d < 1 || d > 31 {
		return false
	}
	if two(11) > 23 || two(14) > 59 || two(17) > 59 {
		return false
	}
	rest := b[base:]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		if n == 1 || n > 7 {
			return false
		}
		rest = rest[n:]
	}
	switch {
	case len(rest) == 1 && rest[0] == 'Z':
		return true
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && isDigit(rest[1]) && isDigit(rest[2]) &&
		rest[3] == ':' && isDigit(rest[4]) && isDigit(rest[5]):
		return int(rest[1]-'0')*10+int(rest[2]-'0') <= 23 && int(rest[4]-'0')*10+int(rest[5]-'0') <= 59
	}
	return false
}
