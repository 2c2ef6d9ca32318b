package receiver

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
}

// ParseEnvelope splits one syslog message (without transport framing) into
// host, program, PID and text. It accepts rsyslog's wire forms (RFC 3164 with
// <PRI>, RFC 5424), plain log-file lines without <PRI>, and RFC 3339
// timestamps in 3164-style lines (rsyslog's high-precision format).
//
// go-syslog v2.3.0's Automatic format does the header parsing; its known
// panics are recovered here and the message falls back to a tolerant splitter
// instead of being lost. The error is non-nil only when nothing usable could
// be extracted; the envelope is still filled as far as possible.
func ParseEnvelope(raw []byte) (Envelope, error) {
	raw = trimTrailingControl(raw)
	if len(raw) == 0 {
		return Envelope{Format: "raw"}, errEmpty
	}
	if env, ok := fastEnvelope(raw); ok {
		return env, nil
	}
	return slowEnvelope(raw)
}

// slowEnvelope parses what the fast path does not take (and, in its fuzz
// test, what it does, to check the two agree): go-syslog, then a split of
// our own.
func slowEnvelope(raw []byte) (Envelope, error) {
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
)

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
		env := Envelope{
			Format:  "rfc5424",
			Host:    nilValue(str(parts, "hostname")),
			Program: nilValue(str(parts, "app_name")),
			PID:     nilValue(str(parts, "proc_id")),
			Text:    strings.TrimPrefix(strings.TrimLeft(str(parts, "message"), " "), "\uFEFF"),
		}
		if !validProgram(env.Program) {
			env.Program = ""
		}
		return env
	}
	env := Envelope{
		Format:  "rfc3164",
		Host:    str(parts, "hostname"),
		Program: str(parts, "tag"),
		Text:    str(parts, "content"),
	}
	if env.Program != "" {
		env.PID = pidAfterTag(raw, env.Program)
		if !validProgram(env.Program) {
			env.Program = ""
		}
	}
	return env
}

func str(parts format.LogParts, key string) string {
	s, _ := parts[key].(string)
	return s
}

// nilValue maps RFC 5424's NILVALUE "-" to empty.
func nilValue(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// pidAfterTag recovers the "[pid]" go-syslog skips (its issue #52); two-line
// daemons need it to pair their lines.
func pidAfterTag(raw []byte, tag string) string {
	i := bytes.Index(raw, []byte(" "+tag+"["))
	if i < 0 {
		return ""
	}
	rest := raw[i+len(tag)+2:]
	end := bytes.IndexByte(rest, ']')
	if end <= 0 || end > 20 {
		return ""
	}
	return string(rest[:end])
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
	if strings.HasPrefix(s, "<") {
		if end := strings.IndexByte(s, '>'); end > 1 && end <= 4 && allDigits(s[1:end]) {
			s = s[end+1:]
		}
	}
	s = skipTimestamp(s)
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

func trimTrailingControl(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] < 0x20) {
		b = b[:len(b)-1]
	}
	return b
}
