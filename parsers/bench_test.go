package parsers

import "testing"

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
	set := NewSet(Builtin()...)
	for _, c := range cases {
		b.Run(c.daemon+"/match", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := set.Parse(c.match); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.daemon+"/nomatch", func(b *testing.B) {
			m := Message{Program: c.match.Program, Text: noise}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := set.Parse(m); err == nil {
					b.Fatal("noise matched")
				}
			}
		})
	}
	b.Run("postfix-smtpd/noise", func(b *testing.B) {
		m := Message{Program: "postfix/smtpd", Text: noise}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := set.Parse(m); err == nil {
				b.Fatal("noise matched")
			}
		}
	})
}

// BenchmarkParseEveryDaemon times each built-in parser on the first line
// of its fixture that it parses (testdata/parsers/NAME.log), so every
// daemon has a benchmark case, and on a line of its program that is not
// its own.
func BenchmarkParseEveryDaemon(b *testing.B) {
	set := NewSet(Builtin()...)
	for _, p := range Builtin() {
		var match Message
		found := false
		for _, l := range readFixture(b, fixtureDir+"/"+p.Name()+".log") {
			if _, err := set.Parse(l.Msg); err == nil && l.Expect == "grant" {
				match, found = l.Msg, true
				break
			}
		}
		if !found {
			b.Fatalf("%s: no line of its fixture parses", p.Name())
		}
		b.Run(p.Name()+"/match", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := set.Parse(match); err != nil {
					b.Fatal(err)
				}
			}
		})
		other := Message{Program: match.Program, Text: "4F2A11A0B2: client=unknown[192.0.2.1], sasl_method=PLAIN"}
		b.Run(p.Name()+"/nomatch", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := set.Parse(other); err == nil {
					b.Fatal("noise matched")
				}
			}
		})
	}
}
