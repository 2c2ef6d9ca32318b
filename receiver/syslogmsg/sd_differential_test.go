package syslogmsg

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	syslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/rfc3164"
	"github.com/leodido/go-syslog/v4/rfc5424"
)

// FuzzEnvelopeDifferential holds relaygate's envelope split (HOSTNAME,
// APP-NAME, PROCID, MSG, and for RFC 5424 the STRUCTURED-DATA) equal to
// leodido/go-syslog v4, an independent Ragel-generated parser used only
// here. The contract, message by message (after TrimTrailingControl, as
// ParseEnvelope reads it):
//
// RFC 5424 (what versionAfterPRI calls 5424-shaped), leodido's rfc5424
// parser in strict mode (no best effort, MSG-ANY):
//   - both accept: Host, Program, PID and Text equal leodido's hostname,
//     appname, procid and message (NILVALUE as "", our Text with one BOM and
//     leading spaces removed and invalid UTF-8 replaced, as Envelope does),
//     and ParseStructuredData(SD) equals leodido's structured data.
//   - leodido accepts, we refuse: only when APP-NAME is not a program tag
//     relaygate accepts (validProgram: NILVALUE, or characters no daemon
//     uses) or VERSION is not 1 (we read only the grammar of version 1).
//   - we accept, leodido refuses: only for three deliberate differences,
//     and leodido must accept the message once they are taken out: (a) a
//     backslash in a PARAM-VALUE before anything but '"', '\' or ']',
//     which RFC 5424 section 6.3.3 says a receiver MUST read as an ordinary
//     backslash and leodido rejects (rewritten to "\\"), (b) a day that the
//     month does not have (Feb 30), which leodido rejects through
//     time.Parse and we do not check (rewritten to NILVALUE), (c) a PRI
//     with leading zeros ("<013>"), which RFC 5424's 1*3DIGIT allows and
//     leodido rejects (rewritten to <13>). None of them moves a field
//     boundary. The split must then be equal as above.
//
// RFC 3164: leodido's rfc3164 parser reads "TAG[CONTENT]: MSG" with any
// printable CONTENT and an optional HOSTNAME without ':', where relaygate
// (go-syslog and the fast path) wants a numeric PID and takes the first
// word as HOSTNAME unless it ends in ':'. So the two are held equal only
// where both accept and leodido found a tag: Program = tag, PID = content,
// Host = hostname (when leodido has one; go-syslog fills a missing one with
// this host's name), Text = message with surrounding spaces trimmed (go-syslog
// trims them, leodido keeps all but the one after ':'). Our tolerant forms
// (Format "raw": unpadded days, RFC 3339 stamps, no PRI) have no leodido
// counterpart in strict mode and are not compared.
func FuzzEnvelopeDifferential(f *testing.F) {
	for _, c := range sdCases {
		f.Add([]byte(c.in))
	}
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		`<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a@1 x="\\"] m`,
		`<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a@1 x="\]"][b@1 y=""] m`,
		`<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a@1 x="\q"] m`,
		`<38>1 2026-02-30T10:00:00Z mx dovecot 1 - [a@1 x="\q"] m`,
		"<38>1 2026-11-21T10:00:00.123456+01:00 mx dovecot 1 - - \uFEFF  m",
		`<38>1 - - dovecot - - -`,
		`<38>1 - - dovecot - - [a]`,
		`<38>1 - - dovecot - - [a] `,
		`<38>1 - - dovecot - - [a][a]`,
		`<38>2 - - dovecot - - [a] m`,
		`<38>1 - - dovecot - - [a x="]"] m`,
		"<13>Nov 21 10:00:00 mx dovecot[1]: imap-login: x",
		"<13>Nov 21 10:00:00 dovecot: x",
	} {
		f.Add([]byte(s))
	}
	p5424 := rfc5424.NewParser()
	p3164 := rfc3164.NewParser(rfc3164.WithYear(rfc3164.Year{YYYY: 2024}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		raw = TrimTrailingControl(raw)
		env, err := ParseEnvelope(raw)
		if _, _, is5424 := versionAfterPRI(raw); is5424 {
			diff5424(t, p5424, raw, env, err == nil)
		} else if err == nil && env.Format == "rfc3164" {
			diff3164(t, p3164, raw, env)
		}
	})
}

var errNilMessage = errors.New("no message and no error")

func diff5424(t *testing.T, p syslog.Machine, raw []byte, env Envelope, ours bool) {
	t.Helper()
	lm, lerr := p.Parse(raw)
	if l, ok := lm.(*rfc5424.SyslogMessage); lerr == nil && (!ok || l == nil) {
		lerr = errNilMessage // leodido's (nil, nil): an answer it did not give
	}
	switch {
	case lerr == nil && ours:
		same5424(t, raw, env, lm.(*rfc5424.SyslogMessage))
	case lerr == nil:
		l := lm.(*rfc5424.SyslogMessage)
		if l.Appname == nil || !validProgram(*l.Appname) || l.Version != 1 {
			return
		}
		t.Fatalf("%q: leodido reads %s, relaygate refuses it", raw, show(l))
	case ours:
		alt := canonical5424(raw)
		lm, lerr = p.Parse(alt)
		if l, ok := lm.(*rfc5424.SyslogMessage); lerr == nil && (!ok || l == nil) {
			lerr = errNilMessage
		}
		if lerr != nil {
			t.Fatalf("%q: relaygate reads %+v; leodido refuses it (%v), and its canonical form %q (%v)", raw, env, lerr, alt, lerr)
		}
		same5424(t, raw, env, lm.(*rfc5424.SyslogMessage))
	}
}

func same5424(t *testing.T, raw []byte, env Envelope, l *rfc5424.SyslogMessage) {
	t.Helper()
	text := strings.TrimLeft(strings.TrimPrefix(deref(l.Message), "\uFEFF"), " ")
	text = strings.ToValidUTF8(text, "\uFFFD")
	if env.Host != deref(l.Hostname) || env.Program != deref(l.Appname) || env.PID != deref(l.ProcID) || env.Text != text {
		t.Fatalf("%q:\nrelaygate %+v\nleodido   %s", raw, env, show(l))
	}
	elems, err := ParseStructuredData(env.SD)
	if err != nil {
		t.Fatalf("%q: envelope SD %q does not parse: %v", raw, env.SD, err)
	}
	var ours map[string]map[string]string
	if len(elems) > 0 {
		ours = map[string]map[string]string{}
	}
	for _, e := range elems {
		ps := map[string]string{}
		for _, p := range e.Params {
			ps[p.Name] = p.Value // leodido keeps the last of a repeated name
		}
		ours[e.ID] = ps
	}
	var theirs map[string]map[string]string
	if l.StructuredData != nil {
		theirs = *l.StructuredData
	}
	if !reflect.DeepEqual(ours, theirs) && !sameCanonicalSD(ours, theirs) {
		t.Fatalf("%q: SD\nrelaygate %q\nleodido   %q", raw, ours, theirs)
	}
}

// sameCanonicalSD compares SD read from canonical5424's rewrite, where an
// ordinary backslash became "\\" for leodido and reads back as one.
func sameCanonicalSD(ours, theirs map[string]map[string]string) bool {
	if len(ours) != len(theirs) {
		return false
	}
	for id, ps := range ours {
		tp, ok := theirs[strings.ReplaceAll(id, `\`, `\\`)]
		if !ok || len(tp) != len(ps) {
			return false
		}
		for k, v := range ps {
			if tp[strings.ReplaceAll(k, `\`, `\\`)] != v {
				return false
			}
		}
	}
	return true
}

// canonical5424 takes our deliberate differences out of a message we read:
// PRI becomes <13>, TIMESTAMP becomes NILVALUE, and in our SD span every backslash
// that does not start an RFC 5424 escape is written as the escape "\\" of
// the same character.
func canonical5424(raw []byte) []byte {
	sp, ok := FastSpans(raw)
	if !ok {
		return raw
	}
	v, _, _ := versionAfterPRI(raw)
	i := v + 2 // "1 "
	ts := bytes.IndexByte(raw[i:], ' ')
	var b bytes.Buffer
	b.WriteString("<13>1 -")
	b.Write(raw[i+ts : sp.sd[0]])
	s := raw[sp.sd[0]:sp.sd[1]]
	for j := 0; j < len(s); j++ {
		b.WriteByte(s[j])
		if s[j] == '\\' {
			if j+1 < len(s) && (s[j+1] == '"' || s[j+1] == '\\' || s[j+1] == ']') {
				j++
				b.WriteByte(s[j])
			} else {
				b.WriteByte('\\')
			}
		}
	}
	b.Write(raw[sp.sd[1]:])
	return b.Bytes()
}

func diff3164(t *testing.T, p syslog.Machine, raw []byte, env Envelope) {
	t.Helper()
	lm, err := p.Parse(raw)
	if err != nil {
		return
	}
	l, ok := lm.(*rfc3164.SyslogMessage)
	if !ok || l == nil || l.Appname == nil {
		// leodido can return (nil, nil): nothing to compare.
		return
	}
	tag := *l.Appname
	if l.ProcID != nil {
		tag += "[" + *l.ProcID + "]"
	}
	if !bytes.HasSuffix(raw, []byte(tag+": "+deref(l.Message))) {
		// leodido sets the tag on a word before it knows "(tag ':' sp)?"
		// matched, and then reads that word as the start of MSG.
		return
	}
	if l.Hostname != nil && !bytes.Contains(raw, []byte(" "+*l.Hostname+" ")) {
		// leodido ends HOSTNAME at a '[' ("0[0 0: x" gives host "0"):
		// a HOSTNAME is a whole word, so there is nothing to compare.
		return
	}
	host := env.Host
	if l.Hostname == nil {
		host = ""
	}
	if env.Program != *l.Appname || env.PID != deref(l.ProcID) || host != deref(l.Hostname) ||
		env.Text != strings.ToValidUTF8(strings.Trim(deref(l.Message), " "), "\uFFFD") {
		t.Fatalf("%q:\nrelaygate %+v\nleodido   host %q tag %q content %q message %q", raw, env,
			deref(l.Hostname), deref(l.Appname), deref(l.ProcID), deref(l.Message))
	}
}

func show(l *rfc5424.SyslogMessage) string {
	return "host " + strings.Join([]string{deref(l.Hostname), "app " + deref(l.Appname), "procid " + deref(l.ProcID),
		"msg " + deref(l.Message)}, " ")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
