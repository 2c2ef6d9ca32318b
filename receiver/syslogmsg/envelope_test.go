package syslogmsg

import (
	"strings"
	"testing"
)

func TestParseEnvelope(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Envelope
		err  bool
	}{
		{
			name: "rsyslog traditional forward",
			in:   "<22>Nov 21 10:00:00 mx1 dovecot[812]: pop3-login: Login: user=<bob>, rip=192.0.2.10",
			want: Envelope{Format: "rfc3164", Host: "mx1", Program: "dovecot", PID: "812", Text: "pop3-login: Login: user=<bob>, rip=192.0.2.10"},
		},
		{
			name: "space-padded day, no pid",
			in:   "<22>Nov  1 10:00:00 mx1 imapd-ssl: LOGIN, user=a, ip=[::ffff:192.0.2.1]",
			want: Envelope{Format: "rfc3164", Host: "mx1", Program: "imapd-ssl", Text: "LOGIN, user=a, ip=[::ffff:192.0.2.1]"},
		},
		{
			name: "trailing newline and NUL",
			in:   "<22>Nov 21 10:00:00 mx1 cyrus/imap[5]: login: [192.0.2.1] u plain User logged in\n\x00",
			want: Envelope{Format: "rfc3164", Host: "mx1", Program: "cyrus/imap", PID: "5", Text: "login: [192.0.2.1] u plain User logged in"},
		},
		{
			name: "RFC 5424 (RSYSLOG_SyslogProtocol23Format)",
			in:   "<22>1 2026-11-21T10:00:00.123456+01:00 mx1 imapd 4711 - - LOGIN, user=a, ip=[2001:db8::1], port=[1]",
			want: Envelope{Format: "rfc5424", Host: "mx1", Program: "imapd", PID: "4711", Text: "LOGIN, user=a, ip=[2001:db8::1], port=[1]"},
		},
		{
			name: "RFC 5424 with structured data and BOM",
			in:   "<22>1 2026-11-21T10:00:00Z mx1 dovecot - - [x@1 a=\"b\"] \uFEFFimap-login: Logged in: user=<u>, rip=192.0.2.9",
			want: Envelope{Format: "rfc5424", Host: "mx1", Program: "dovecot", Text: "imap-login: Logged in: user=<u>, rip=192.0.2.9", SD: `[x@1 a="b"]`},
		},
		{
			name: "plain log-file line without PRI",
			in:   "Nov 21 10:00:00 mx1 dovecot: imap-login: Login: user=<a>, rip=192.0.2.1",
			want: Envelope{Format: "raw", Host: "mx1", Program: "dovecot", Text: "imap-login: Login: user=<a>, rip=192.0.2.1"},
		},
		{
			name: "unpadded day (go-syslog cannot read it)",
			in:   "<22>Nov 1 10:00:00 mx1 dovecot[9]: imap-login: Login: user=<a>, rip=192.0.2.1",
			want: Envelope{Format: "raw", Host: "mx1", Program: "dovecot", PID: "9", Text: "imap-login: Login: user=<a>, rip=192.0.2.1"},
		},
		{
			name: "RFC 3339 stamp in a 3164 line (RSYSLOG_ForwardFormat)",
			in:   "<22>2026-11-21T10:00:00.123456+01:00 mx1 dovecot[812]: imap-login: Login: user=<a>, rip=192.0.2.1",
			want: Envelope{Format: "raw", Host: "mx1", Program: "dovecot", PID: "812", Text: "imap-login: Login: user=<a>, rip=192.0.2.1"},
		},
		{
			name: "local /dev/log form without host",
			in:   "<22>Nov 21 10:00:00 pop3d: LOGIN, user=a, ip=[192.0.2.1]",
			want: Envelope{Format: "rfc3164", Program: "pop3d", Text: "LOGIN, user=a, ip=[192.0.2.1]"},
		},
		{name: "PRI only (go-syslog panics)", in: "<13>", err: true},
		{name: "ends after hostname (go-syslog panics)", in: "<13>Nov 21 10:00:00 host", err: true},
		{name: "negative octet count as text", in: "-5 <13>abc", err: true},
		{name: "untagged text", in: "<13>Nov 21 10:00:00 host LOGIN, user=a, ip=[192.0.2.1]", err: true},
		{name: "empty", in: "\n", err: true},
		// go-syslog reads a word followed by a space as the tag when a
		// doubled space stands where HOSTNAME was; a tag ends in ':'.
		{
			name: "doubled space, then host and a tag without ':'",
			in:   "<13>Nov 21 10:00:00  dovecot imap-login: Login: user=<a>, rip=192.0.2.1",
			want: Envelope{Format: "raw", Host: "dovecot", Program: "imap-login", Text: "Login: user=<a>, rip=192.0.2.1"},
		},
		{
			name: "doubled space, then host and tag",
			in:   "<13>Nov 21 10:00:00  mx dovecot: imap-login: Login: user=<a>, rip=192.0.2.1",
			want: Envelope{Format: "raw", Host: "mx", Program: "dovecot", Text: "imap-login: Login: user=<a>, rip=192.0.2.1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEnvelope([]byte(tt.in))
			if tt.err {
				if err == nil {
					t.Fatalf("ParseEnvelope(%q) = %+v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEnvelope(%q): %v", tt.in, err)
			}
			if got.Format == "rfc3164" && tt.want.Host == "" {
				// go-syslog fills a missing host with this host's name.
				got.Host = ""
			}
			if got != tt.want {
				t.Errorf("ParseEnvelope(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseEnvelope(f *testing.F) {
	for _, s := range []string{
		"<22>Nov 21 10:00:00 mx1 dovecot[812]: pop3-login: Login: user=<bob>, rip=192.0.2.10",
		"<22>1 2026-11-21T10:00:00Z mx1 dovecot - - - imap-login: Logged in: user=<u>, rip=192.0.2.9",
		"<13>", "<13>Nov 21 10:00:00 host", "-5 <13>abc", "Nov 1 10:00:00 a b: c",
		"<999999999999>x", "<22>1 - - - - - -", "<22>2026-11-21T10:00:00Z h t[",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		env, err := ParseEnvelope(raw)
		if err == nil && !validProgram(env.Program) {
			t.Fatalf("accepted invalid program %q", env.Program)
		}
	})
}

// sdCase is an RFC 5424 message whose STRUCTURED-DATA a reader can
// mis-delimit. want.Text is the MSG; err means the message must be refused
// (no program), never guessed at.
type sdCase struct {
	name string
	in   string
	want Envelope // Format "rfc5424" unless err
	sd   string   // want.SD; kept apart so the table runs on code without it
	err  bool
}

const sdLogin = "imap-login: Login: user=<a>, method=PLAIN, rip=203.0.113.98, lip=192.0.2.1"

var sdCases = []sdCase{
	{
		// The ']' after '\"' is not escaped: malformed, so refused. go-syslog
		// ended the SD there and took the login inside the value for MSG.
		name: "issue 11: escaped quote, then an unescaped bracket",
		in:   `<38>1 2026-11-21T10:00:00Z mx dovecot 123 - [x@1 m="a\"] ` + sdLogin + `"] hello`,
		err:  true,
	},
	{
		name: "issue 11 escaped right: the value stays open",
		in:   `<38>1 2026-11-21T10:00:00Z mx dovecot 123 - [x@1 m="a\"\] ` + sdLogin + `"] hello`,
		want: Envelope{Host: "mx", Program: "dovecot", PID: "123", Text: "hello"},
		sd:   `[x@1 m="a\"\] ` + sdLogin + `"]`,
	},
	{
		name: "escaped backslash then escaped quote",
		in:   `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1 m="a\\\"\] ` + sdLogin + `"] hello`,
		want: Envelope{Host: "mx", Program: "dovecot", PID: "1", Text: "hello"},
		sd:   `[x@1 m="a\\\"\] ` + sdLogin + `"]`,
	},
	{
		name: "escaped backslash ends the value",
		in:   `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1 m="a\\"] ` + sdLogin,
		want: Envelope{Host: "mx", Program: "dovecot", PID: "1", Text: sdLogin},
		sd:   `[x@1 m="a\\"]`,
	},
	{
		name: "escaped bracket",
		in:   `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1 m="a\] b=\"c"] hello`,
		want: Envelope{Host: "mx", Program: "dovecot", PID: "1", Text: "hello"},
		sd:   `[x@1 m="a\] b=\"c"]`,
	},
	{
		name: "escaped bracket then a second element in the value",
		in:   `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1 m="\][y@1 n=\"v\"\] ` + sdLogin + `"] hello`,
		want: Envelope{Host: "mx", Program: "dovecot", PID: "1", Text: "hello"},
		sd:   `[x@1 m="\][y@1 n=\"v\"\] ` + sdLogin + `"]`,
	},
	{
		name: "invalid escape is two ordinary characters (RFC 5424 6.3.3)",
		in:   `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1 p="C:\new\"\] ` + sdLogin + `"] hello`,
		want: Envelope{Host: "mx", Program: "dovecot", PID: "1", Text: "hello"},
		sd:   `[x@1 p="C:\new\"\] ` + sdLogin + `"]`,
	},
	{
		name: "multiple elements",
		in:   `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a@1 x="1"][b@1 y="]"][c@1] ` + sdLogin,
		err:  true, // the unescaped ']' in b@1
	},
	{
		name: "multiple elements, escaped",
		in:   `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a@1 x="1" x="2"][b@1 y="\]"][c@1] ` + sdLogin,
		want: Envelope{Host: "mx", Program: "dovecot", PID: "1", Text: sdLogin},
		sd:   `[a@1 x="1" x="2"][b@1 y="\]"][c@1]`,
	},
	{
		name: "empty value, SD and no MSG",
		in:   `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a@1 x=""]`,
		want: Envelope{Host: "mx", Program: "dovecot", PID: "1"},
		sd:   `[a@1 x=""]`,
	},
	{
		name: "SD, SP and no MSG",
		in:   `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a@1] `,
		want: Envelope{Host: "mx", Program: "dovecot", PID: "1"},
		sd:   `[a@1]`,
	},
	{
		name: "NILVALUE SD and no MSG",
		in:   `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - -`,
		want: Envelope{Host: "mx", Program: "dovecot", PID: "1"},
	},
	{
		name: "BOM MSG after SD",
		in:   "<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a@1 x=\"\\\"\"] \uFEFF" + sdLogin,
		want: Envelope{Host: "mx", Program: "dovecot", PID: "1", Text: sdLogin},
		sd:   `[a@1 x="\""]`,
	},
	{
		name: "NILVALUE timestamp, host and procid",
		in:   `<38>1 - - dovecot - - [a@1 x="\""] ` + sdLogin,
		want: Envelope{Program: "dovecot", Text: sdLogin},
		sd:   `[a@1 x="\""]`,
	},
	{
		name: "UTF-8 in a value",
		in:   `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a@1 x="ü\"\]"] hello`,
		want: Envelope{Host: "mx", Program: "dovecot", PID: "1", Text: "hello"},
		sd:   `[a@1 x="ü\"\]"]`,
	},
	// Malformed: refused, whatever follows.
	{name: "unescaped bracket in value", in: `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1 m="a] ` + sdLogin + `"] hello`, err: true},
	{name: "value never closed", in: `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1 m="a\"] ` + sdLogin, err: true},
	{name: "element never closed", in: `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1 m="a" ` + sdLogin, err: true},
	{name: "param without quotes", in: `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1 m=a] ` + sdLogin, err: true},
	{name: "param without value", in: `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1 m] ` + sdLogin, err: true},
	{name: "space before bracket", in: `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1 ] ` + sdLogin, err: true},
	{name: "empty element", in: `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [] ` + sdLogin, err: true},
	{name: "MSG glued to SD", in: `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1]` + sdLogin, err: true},
	{name: "text instead of SD", in: `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - ` + sdLogin, err: true},
	{name: "missing SD", in: `<38>1 2026-11-21T10:00:00Z mx dovecot 1 -`, err: true},
	{name: "NILVALUE glued to MSG", in: `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - -` + sdLogin, err: true},
	{name: "repeated SD-ID", in: `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a@1 x="1"][a@1 x="2"] ` + sdLogin, err: true},
	{name: "SD-ID over 32", in: `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [` + strings.Repeat("a", 33) + `] ` + sdLogin, err: true},
	{name: "PARAM-NAME over 32", in: `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a ` + strings.Repeat("a", 33) + `="1"] ` + sdLogin, err: true},
	{name: "quote in SD-ID", in: `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a"] ` + sdLogin + `"] hello`, err: true},
	{name: "invalid UTF-8 in value", in: "<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a x=\"\xff\"] " + sdLogin, err: true},
	{name: "backslash before end", in: `<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1 m="\`, err: true},
	// The header around SD.
	{name: "VERSION 2", in: `<38>2 2026-11-21T10:00:00Z mx dovecot 1 - - ` + sdLogin, err: true},
	{name: "VERSION 10", in: `<38>10 2026-11-21T10:00:00Z mx dovecot 1 - - ` + sdLogin, err: true},
	{name: "PRI over 191", in: `<192>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1 m="a\"\] ` + sdLogin + `"] hello`, err: true},
	{name: "control byte in HOSTNAME", in: "<38>1 2026-11-21T10:00:00Z m\x01x dovecot 1 - - " + sdLogin, err: true},
	{name: "HOSTNAME over 255", in: `<38>1 2026-11-21T10:00:00Z ` + strings.Repeat("h", 256) + ` dovecot 1 - - ` + sdLogin, err: true},
	{name: "MSGID over 32", in: `<38>1 2026-11-21T10:00:00Z mx dovecot 1 ` + strings.Repeat("m", 33) + ` - ` + sdLogin, err: true},
	{name: "bad timestamp", in: `<38>1 2026-13-21T10:00:00Z mx dovecot 1 - - ` + sdLogin, err: true},
	{name: "two spaces between fields", in: `<38>1 2026-11-21T10:00:00Z  mx dovecot 1 - - ` + sdLogin, err: true},
	{name: "NILVALUE APP-NAME", in: `<38>1 2026-11-21T10:00:00Z mx - 1 - - ` + sdLogin, err: true},
}

func (c sdCase) check(t *testing.T, how string, got Envelope, ok bool) {
	t.Helper()
	if c.err {
		if ok && got.Program != "" {
			t.Errorf("%s(%q) = %+v, want it refused", how, c.in, got)
		}
		return
	}
	if !ok {
		t.Fatalf("%s(%q) refused it", how, c.in)
	}
	want := c.want
	want.Format = "rfc5424"
	got.SD = "" // checked by TestStructuredDataSpan
	if got != want {
		t.Errorf("%s(%q)\n got %+v\nwant %+v", how, c.in, got, want)
	}
}

// TestEnvelopeStructuredData runs every SD case through each reader of the
// envelope: ParseEnvelope, the fast path alone and the slow path alone.
func TestEnvelopeStructuredData(t *testing.T) {
	for _, c := range sdCases {
		t.Run(c.name, func(t *testing.T) {
			env, err := ParseEnvelope([]byte(c.in))
			c.check(t, "ParseEnvelope", env, err == nil)
			if sp, ok := FastSpans([]byte(c.in)); ok {
				c.check(t, "FastSpans", sp.Envelope([]byte(c.in)), true)
			}
			env, err = slowEnvelope([]byte(c.in))
			c.check(t, "slowEnvelope", env, err == nil)
		})
	}
}
