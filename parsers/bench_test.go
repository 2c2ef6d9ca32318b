package parsers

import (
	"testing"
	"time"
)

// BenchmarkParse is the baseline for later performance work: one success
// line per daemon, the same daemon's program with a foreign line, and a
// postfix/smtpd line, which the Set must drop without calling any parser.
func BenchmarkParse(b *testing.B) {
	const noise = "4F2A11A0B2: client=unknown[192.0.2.1], sasl_method=PLAIN, sasl_username=alice"
	cases := []struct {
		daemon string
		match  Message
	}{
		{"dovecot", Message{Program: "dovecot", Text: "imap-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.10, lip=203.0.113.5, mpid=4711, TLS, session=<kX3b8Qp7aMDAAAIK>"}},
		{"courier", Message{Program: "imapd", Text: "LOGIN, user=alice@example.org, ip=[::ffff:192.0.2.10], port=[50412], protocol=IMAP"}},
		{"cyrus", Message{Program: "cyrus/imap", Text: "login: client.example.net [192.0.2.10] alice PLAIN+TLS User logged in SESSIONID=<mx1-18635-1771600000-1-123>"}},
		{"cyrus-logfmt", Message{Program: "imap", Text: `event=login.good session_id=mx1-5357-1 r.clienthost="client.example.net [192.0.2.10]" u.username=alice login.mech=PLAIN login.tls=1`}},
		{"uw", Message{Program: "ipop3d", Text: "Login user=alice host=client.example.net [192.0.2.10] nmsgs=0/0"}},
	}
	set := NewSet(builtin()...)
	for _, c := range cases {
		b.Run(c.daemon+"/match", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := set.parse(c.match); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.daemon+"/nomatch", func(b *testing.B) {
			m := Message{Program: c.match.Program, Text: noise}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := set.parse(m); err == nil {
					b.Fatal("noise matched")
				}
			}
		})
	}
	b.Run("postfix-smtpd/noise", func(b *testing.B) {
		m := Message{Program: "postfix/smtpd", Text: noise}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := set.parse(m); err == nil {
				b.Fatal("noise matched")
			}
		}
	})
}

// daemonBenchLine is one built-in parser's benchmark case: the first
// "# grant" line of its fixture that the Set parses.
type daemonBenchLine struct {
	parser Parser
	match  Message
	found  bool
}

// daemonBenchLines finds every built-in parser's case, in builtin's order;
// TestEveryParserConforms checks that each one has one.
func daemonBenchLines(tb testing.TB, set *Set) []daemonBenchLine {
	tb.Helper()
	var out []daemonBenchLine
	for _, p := range builtin() {
		c := daemonBenchLine{parser: p}
		for _, l := range readFixture(tb, fixturePath(p, ".log")) {
			if ev, err := set.parse(l.Msg); err == nil && l.Expect == "grant" && ev.Daemon == p.Name() {
				c.match, c.found = l.Msg, true
				break
			}
		}
		out = append(out, c)
	}
	return out
}

// BenchmarkParseEveryDaemon times each built-in parser on the first line
// of its fixture that it parses (testdata/parsers/NAME.log), so every
// daemon has a benchmark case, and on a line of its program that is not
// its own.
func BenchmarkParseEveryDaemon(b *testing.B) {
	set := NewSet(builtin()...)
	for _, c := range daemonBenchLines(b, set) {
		if !c.found {
			b.Fatalf("%s: no grant line of its fixture parses", c.parser.Name())
		}
		match := c.match
		b.Run(c.parser.Name()+"/match", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := set.parse(match); err != nil {
					b.Fatal(err)
				}
			}
		})
		other := Message{Program: match.Program, Text: "4F2A11A0B2: client=unknown[192.0.2.1], sasl_method=PLAIN"}
		b.Run(c.parser.Name()+"/nomatch", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := set.parse(other); err == nil {
					b.Fatal("noise matched")
				}
			}
		})
	}
}

// BenchmarkPipelineStep runs every fixture line, noise included, through
// one Pipeline in turn: the daemon's per-message cost after the receiver,
// counting included.
func BenchmarkPipelineStep(b *testing.B) {
	var msgs []Message
	for _, path := range fixtures(b) {
		for _, fl := range readFixture(b, path) {
			msgs = append(msgs, fl.Msg)
		}
	}
	p := NewPipeline(NewSet(builtin()...), NewCorrelator(10000, 2*time.Minute))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		p.Step(msgs[i%len(msgs)], fixtureEpoch)
	}
}
