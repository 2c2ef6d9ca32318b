package receiver

import (
	"bufio"
	"errors"
	"io"
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
			want: Envelope{Format: "rfc5424", Host: "mx1", Program: "dovecot", Text: "imap-login: Logged in: user=<u>, rip=192.0.2.9"},
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
				// go-syslog fills a missing host with the receiver's own name.
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

func TestFrameReader(t *testing.T) {
	long := strings.Repeat("x", 70000)
	stream := "<13>Nov 21 10:00:00 h a: one\n" +
		"28 <13>Nov 21 10:00:00 h a: two" +
		"<13>Nov 21 10:00:00 h a: three\r\n" +
		long + "\n" + // over the limit: skipped, stream goes on
		"70000 " + long + // octet-counted and over the limit: skipped exactly
		"\n" + // stray newline between frames
		"2026-11-21T10:00:00Z h a: four\n" + // digits but not a count
		"<13>Nov 21 10:00:00 h a: five" // no newline before EOF
	fr := newFrameReader(strings.NewReader(stream), DefaultMaxMessage)
	var got []string
	tooLong := 0
	for {
		msg, err := fr.next()
		if errors.Is(err, errTooLong) {
			tooLong++
			continue
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("next: %v", err)
			}
			break
		}
		if len(msg) > 0 {
			got = append(got, string(msg))
		}
	}
	want := []string{
		"<13>Nov 21 10:00:00 h a: one",
		"<13>Nov 21 10:00:00 h a: two",
		"<13>Nov 21 10:00:00 h a: three",
		"2026-11-21T10:00:00Z h a: four",
		"<13>Nov 21 10:00:00 h a: five",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("messages\n got %q\nwant %q", got, want)
	}
	if tooLong != 2 {
		t.Errorf("too long = %d, want 2", tooLong)
	}
}

func TestFrameReaderBadCount(t *testing.T) {
	fr := newFrameReader(strings.NewReader("12345678901 x"), DefaultMaxMessage)
	if _, err := fr.next(); !errors.Is(err, errBadFrame) {
		t.Fatalf("next = %v, want errBadFrame", err)
	}
	// "-5 <13>abc" is not a count at all: it is one (useless) line.
	fr = newFrameReader(strings.NewReader("-5 <13>abc\n"), DefaultMaxMessage)
	if msg, err := fr.next(); err != nil || string(msg) != "-5 <13>abc" {
		t.Fatalf("next = %q, %v", msg, err)
	}
}

func FuzzFrameReader(f *testing.F) {
	f.Add([]byte("28 <13>Nov 21 10:00:00 h a: two<13>x\n"))
	f.Add([]byte("-5 <13>abc\n5 <13>"))
	f.Add([]byte("0 \n00000 x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := newFrameReader(bufio.NewReader(strings.NewReader(string(data))), 128)
		for i := 0; i < len(data)+2; i++ {
			msg, err := fr.next()
			if err != nil && !errors.Is(err, errTooLong) {
				return
			}
			if len(msg) > 128 {
				t.Fatalf("message of %d bytes over the limit", len(msg))
			}
		}
	})
}

func TestFrameReaderTruncatedFrame(t *testing.T) {
	for _, in := range []string{"500 <13>Nov 21 10:00:00 h a: x\n", "123456789 short", "12 "} {
		fr := newFrameReader(strings.NewReader(in), DefaultMaxMessage)
		if _, err := fr.next(); !errors.Is(err, errTruncated) {
			t.Errorf("next(%q) = %v, want errTruncated", in, err)
		}
	}
}
