package syslogmsg

import "testing"

var fastSeeds = []string{
	"<22>Nov 21 10:00:00 mx1 dovecot[812]: pop3-login: Login: user=<bob>, rip=192.0.2.10",
	"<22>Nov  1 10:00:00 mx1 imapd-ssl: LOGIN, user=a, ip=[::ffff:192.0.2.1]",
	"<22>Nov 21 10:00:00 pop3d: LOGIN, user=a, ip=[192.0.2.1]",
	"<22>1 2026-11-21T10:00:00.123456+01:00 mx1 imapd 4711 - - LOGIN, user=a, ip=[2001:db8::1]",
	"<22>1 2026-11-21T10:00:00Z mx1 dovecot - - - \uFEFFimap-login: x",
	"<22>Nov 21 10:00:00 mx1 postfix/smtpd[1]:  two  spaces  ",
	"<13>Nov 21 10:00:00 host tag[]: x",
	"<191>Dec 31 23:59:59 h t: x",
	"Nov 21 15:53:29 mail dovecot: pop3-login: Login: user=<alice>, rip=127.0.0.2",
	"Nov  1 15:53:29 pop3d[7]:  LOGIN, user=a",
	"Feb 29 00:00:00 h t:x",
}

// TestFastPathAgreesWithGoSyslog: wherever the fast path accepts a message,
// it must read it exactly as go-syslog (plus the fallback splitter) does.
func TestFastPathAgreesWithGoSyslog(t *testing.T) {
	for _, s := range fastSeeds {
		checkFastAgrees(t, []byte(s))
	}
}

func FuzzFastPathAgrees(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkFastAgrees(t, raw) })
}

func checkFastAgrees(t *testing.T, raw []byte) {
	t.Helper()
	raw = TrimTrailingControl(raw)
	sp, ok := FastSpans(raw)
	if !ok {
		return
	}
	fast := sp.Envelope(raw)
	slow, _ := slowEnvelope(raw)
	if fast.Format == "rfc3164" && fast.Host == "" {
		slow.Host = "" // go-syslog fills in this host's name
	}
	if fast.Program != slow.Program || fast.PID != slow.PID || fast.Text != slow.Text || fast.Host != slow.Host {
		t.Fatalf("%q:\nfast %+v\nslow %+v", raw, fast, slow)
	}
}

// BenchmarkFastSpans is the header split every received message and every
// line of `relaygate parse` pays for, on a typical 3164 line.
func BenchmarkFastSpans(b *testing.B) {
	raw := []byte("<22>Nov 21 10:00:00 mx1 postfix/smtpd[2211]: connect from unknown[198.51.100.23]")
	for range b.N {
		if _, ok := FastSpans(raw); !ok {
			b.Fatal("not on the fast path")
		}
	}
}

func TestMonthIndex(t *testing.T) {
	for i, m := range months {
		if got := monthIndex([]byte(m)); got != i {
			t.Errorf("monthIndex(%q) = %d, want %d", m, got, i)
		}
	}
	for _, bad := range []string{"", "No", "Novv", "nov", "NOV", "Nox", "Jum"} {
		if got := monthIndex([]byte(bad)); got != -1 {
			t.Errorf("monthIndex(%q) = %d, want -1", bad, got)
		}
	}
}

// The envelope benchmarks: what ParseEnvelope costs per message of each
// form (the receiver pays the same through FastSpans and Spans.Envelope).
var benchLines = map[string]string{
	"3164":      "<22>Nov 21 10:00:00 mx1 dovecot[812]: imap-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1",
	"5424":      "<22>1 2026-11-21T10:00:00.123456+01:00 mx1 dovecot 812 - - imap-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1",
	"5424SD":    `<22>1 2026-11-21T10:00:00.123456+01:00 mx1 dovecot 812 - [origin@32473 uid="0" gid="0" x-pid="812"][meta sequenceId="7"] imap-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1`,
	"5424SDesc": `<22>1 2026-11-21T10:00:00.123456+01:00 mx1 dovecot 812 - [x@1 m="a \"quoted\" \] \\ value"] imap-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1`,
}

func BenchmarkEnvelope(b *testing.B) {
	for _, name := range []string{"3164", "5424", "5424SD", "5424SDesc"} {
		raw := []byte(benchLines[name])
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := ParseEnvelope(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkFastSpans5424(b *testing.B) {
	for _, name := range []string{"5424", "5424SD"} {
		raw := []byte(benchLines[name])
		b.Run(name, func(b *testing.B) {
			for range b.N {
				if _, ok := FastSpans(raw); !ok {
					b.Fatal("not on the fast path")
				}
			}
		})
	}
}
