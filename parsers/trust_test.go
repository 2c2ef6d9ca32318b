package parsers

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// TestTagCaseEveryParser holds the one rule for program tags: compared
// without regard to ASCII case, in Knows, KnowsBytes, Parse and Attempts
// alike, for every parser (issue 11: "Dovecot:" missed while "IMAPD" hit).
func TestTagCaseEveryParser(t *testing.T) {
	set := NewSet(builtin()...)
	for _, fx := range fixtures(t) {
		for _, fl := range readFixture(t, fx) {
			if fl.Expect != "grant" {
				continue
			}
			lower, lowerErr := set.parse(fl.Msg)
			for _, prog := range []string{strings.ToUpper(fl.Msg.Program), strings.ToUpper(fl.Msg.Program[:1]) + fl.Msg.Program[1:]} {
				m := fl.Msg
				m.Program = prog
				if !set.Knows(prog) || !set.KnowsBytes([]byte(prog)) {
					t.Errorf("%s: Knows/KnowsBytes(%q) false", fx, prog)
				}
				ev, err := set.parse(m)
				if ev != lower || (err == nil) != (lowerErr == nil) {
					t.Errorf("%s:%d: tag %q gives %+v, %v; %q gives %+v, %v", fx, fl.N, prog, ev, err, fl.Msg.Program, lower, lowerErr)
				}
				atts := set.Attempts(m)
				if len(atts) == 0 {
					t.Errorf("%s:%d: Attempts with tag %q is empty", fx, fl.N, prog)
				}
			}
		}
	}
	// Only ASCII folds: the Kelvin sign is not a 'k'.
	rules, err := parseRules([]byte("rules:\n  - name: r\n    programs: [kd]\n    regex: '^ok (?P<addr>\\S+)'\n"), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ks := NewSet(rules[0])
	for _, prog := range []string{"\u212Ad", "\u212AD"} {
		if ks.Knows(prog) || ks.KnowsBytes([]byte(prog)) {
			t.Errorf("%q is known as kd", prog)
		}
		if _, err := ks.parse(Message{Program: prog, Text: "ok 192.0.2.1"}); !errors.Is(err, ErrNoMatch) {
			t.Errorf("%q parses: %v", prog, err)
		}
	}
	long := strings.Repeat("x", 70)
	rules, err = parseRules([]byte("rules:\n  - name: r\n    programs: ["+long+"]\n    regex: '^ok (?P<addr>\\S+)'\n"), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ls := NewSet(rules[0])
	if !ls.Knows(strings.ToUpper(long)) || !ls.KnowsBytes([]byte(strings.ToUpper(long))) {
		t.Errorf("a 70-byte rule tag: Knows %v, KnowsBytes %v", ls.Knows(long), ls.KnowsBytes([]byte(long)))
	}
}

// TestNeverGrant covers the IANA special-purpose blocks that are never an
// SMTP client, and that every granted key is the text Postfix looks up.
func TestNeverGrant(t *testing.T) {
	for _, s := range []string{
		"::1.2.3.4", "::102:304", "::0.0.0.2", "::ffff", // IPv4-compatible (::/96)
		"100::", "100::1", "100::ffff:ffff:ffff:ffff", // discard-only
		"2002::", "2002::1", "2002:7f00:1::1", "2002:c0a8:101::1", "2002:a00:1::", "2002:e000:1::", "2002:6440:1::", // 6to4 of unusable/private v4
		"64:ff9b::", "64:ff9b::127.0.0.1", "64:ff9b::10.0.0.1", "64:ff9b::169.254.1.1", "64:ff9b::224.0.0.1",
		"2001:0:4136:e378:8000:63bf:f5ff:fffe", // Teredo, client 10.0.0.1
		"2001:0:a00:1:8000:63bf:3fff:fdd2",     // Teredo, server 10.0.0.1
		"192.0.0.8", "192.0.0.170", "192.0.0.171", "192.0.0.100", "192.0.0.255",
		"2001:5::1", "2001:10::1", "2001:1ff::1",
		"0.0.0.0", "0.1.2.3", "255.255.255.255", "240.0.0.1", "224.0.0.1", "239.1.1.1", "169.254.0.1",
		"::", "fe80::1", "febf::1", "ff02::1", "ff0e::1",
		// Keys Postfix's cut-back lookups would match for clients in
		// another /64: "2400::5" answers for 2400:0:0:5:x:y:z:w.
		"2400::5", "2400::5:6:7:8", "2a00::1:2", "::ffff:0:192.0.2.1",
	} {
		if a, err := parseAddr(s); err == nil {
			t.Errorf("parseAddr(%q) = %v, want refused", s, a)
		}
		// The same rule for addresses carried over from a map or state.
		if a, err := netip.ParseAddr(s); err == nil && Grantable(a) {
			t.Errorf("Grantable(%v) = true, want false", a)
		}
	}
	// Grantable, with the key glibc's inet_ntop gives (checked with
	// Python's socket.inet_ntop on glibc, as Postfix's smtpd prints it).
	for in, key := range map[string]string{
		"::1":                                  "::1",
		"64:ff9b::198.51.100.10":               "64:ff9b::c633:640a",
		"64:FF9B::C633:640A":                   "64:ff9b::c633:640a",
		"2002:cb00:7107::1":                    "2002:cb00:7107::1",
		"2001:0:4136:e378:8000:63bf:3fff:fdd2": "2001:0:4136:e378:8000:63bf:3fff:fdd2", // client 192.0.2.45
		"::ffff:192.0.2.1":                     "192.0.2.1",
		"2400:0:0:5::1":                        "2400:0:0:5::1",
		"2400::5:6:7:8:9":                      "2400::5:6:7:8:9",
		"2001:db8::5":                          "2001:db8::5",
		"192.0.0.1":                            "192.0.0.1",
		"192.0.0.9":                            "192.0.0.9",
		"2001:2::1":                            "2001:2::1",
		"2001:20::1":                           "2001:20::1",
		"2001:200::1":                          "2001:200::1",
		"100.64.0.1":                           "100.64.0.1",
		"198.18.0.1":                           "198.18.0.1",
		"192.0.2.1":                            "192.0.2.1",
		"203.0.113.5":                          "203.0.113.5",
		"2001:db8::1":                          "2001:db8::1",
		"1:0:0:1:0:0:0:1":                      "1:0:0:1::1",
		"2001:db8:0:0:1:0:0:1":                 "2001:db8::1:0:0:1",
	} {
		a, err := parseAddr(in)
		if err != nil || a.String() != key {
			t.Errorf("parseAddr(%q) = %v, %v; want key %q", in, a, err, key)
		}
		if !Grantable(netip.MustParseAddr(in)) {
			t.Errorf("Grantable(%s) = false, want true", in)
		}
	}
}

// TestGrantedKeyIsPostfixForm: no grantable address has an embedded-IPv4
// text form, which is where Go's netip and glibc's inet_ntop differ.
func TestGrantedKeyIsPostfixForm(t *testing.T) {
	for _, s := range []string{"::1.2.3.4", "::ffff:1.2.3.4", "::0.1.0.0", "::255.255.255.255"} {
		a := netip.MustParseAddr(s)
		if got, err := parseAddr(s); err == nil && strings.Contains(got.String(), ".") != got.Is4() {
			t.Errorf("%v granted with key %q", a, got)
		}
	}
}

func TestDovecotCustomFormat(t *testing.T) {
	reordered, err := NewDovecot("rip=%r user=<%u> lip=%l method=%m session=<%{session}>")
	if err != nil {
		t.Fatal(err)
	}
	v24, err := NewDovecot("user=<%{user}> method=%{mechanism} rip=%{remote_ip} lip=%{local_ip} mpid=%{mail_pid} %{secured} session=<%{session}>")
	if err != nil {
		t.Fatal(err)
	}
	userLast, err := NewDovecot("method=%m rip=%r user=%u")
	if err != nil {
		t.Fatal(err)
	}
	runCases(t, reordered, []parseCase{
		{"reordered", "dovecot", "imap-login: Login: rip=203.0.113.9, user=<frank>, lip=203.0.113.5, method=PLAIN, session=<q1>", "login|203.0.113.9|frank|q1"},
		{"default order refused", "dovecot", "imap-login: Login: user=<frank>, method=PLAIN, rip=203.0.113.9, lip=203.0.113.5", "refused"},
		{"no rip: forged one refused", "dovecot", "imap-login: Login: user=<x>, lip=1.2.3.4, method=PLAIN, session=<a>, rip=203.0.113.66, user=<y>, method=PLAIN, session=<q>", "refused"},
	})
	runCases(t, v24, []parseCase{
		{"2.4 default", "dovecot", "imap-login: Logged in: user=<a>, method=PLAIN, rip=192.0.2.1, lip=203.0.113.5, mpid=1, TLS, session=<S>", "login|192.0.2.1|a|S"},
		{"issue 11 line", "dovecot", "imap-login: Logged in: user=<x>, rip=203.0.113.66, <>, method=PLAIN, mpid=13349, secured, session=<370BBGphAAAAAAAA>", "refused"},
	})
	runCases(t, userLast, []parseCase{
		{"user last, anything in it", "dovecot", "imap-login: Login: method=PLAIN, rip=192.0.2.1, user=a, lip=203.0.113.66", "login|192.0.2.1|a, lip=203.0.113.66|"},
		{"user last, rip= in it", "dovecot", "imap-login: Login: method=PLAIN, rip=192.0.2.1, user=a, rip=203.0.113.66", "refused"},
	})

	for _, bad := range []struct{ format, want string }{
		{"", "empty"},
		{"user=<%u> method=%m", "exactly once"},
		{"rip=%r rip=%{remote_ip}", "exactly once"},
		{"user=<%Lu> rip=%r", "modifier"},
		{"user=<%{user|lower}> rip=%r", "filters"},
		{"user=<%{nosuch}> rip=%r", "unknown variable"},
		{"%u%r", "cannot be told apart"},
		{"rip=%r x=%", "lone %"},
		{"rip=%r x=%{user", "unterminated"},
		// doveconf without -h prints the setting's name too.
		{"login_log_format_elements = user=<%u> method=%m rip=%r", "doveconf -h"},
	} {
		if _, err := parseDovecotLogFormat(bad.format); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("parseDovecotLogFormat(%q) = %v, want an error containing %q", bad.format, err, bad.want)
		}
	}
}

func TestDefaultDovecotFormat(t *testing.T) {
	f, err := parseDovecotLogFormat(DefaultDovecotLogFormat)
	if err != nil || f.String() != DefaultDovecotLogFormat {
		t.Fatalf("default format: %v", err)
	}
}

func TestRulesFileDovecotFormat(t *testing.T) {
	c, err := ParseRulesConfig([]byte("dovecot_log_format: rip=%r user=<%u> method=%m\n"), "r.yaml")
	if err != nil || c.DovecotLogFormat != "rip=%r user=<%u> method=%m" || len(c.Rules) != 0 {
		t.Errorf("format-only file: %+v, %v", c, err)
	}
	_, err = ParseRulesConfig([]byte("dovecot_log_format: user=<%u>\n"), "r.yaml")
	if err == nil || !strings.HasPrefix(err.Error(), "r.yaml: dovecot_log_format:") {
		t.Errorf("bad format: %v", err)
	}
	if _, err := parseRules([]byte("dovecot_log_format: rip=%r method=%m\n"), "r.yaml"); err == nil {
		t.Error("parseRules accepted a file without rules")
	}
}

// TestDovecotAmbiguityBounded: a line built to have very many readings is
// refused, quickly, instead of searched.
func TestDovecotAmbiguityBounded(t *testing.T) {
	f, err := NewDovecot("user=<%u> orig=<%{orig_user}> auth=<%{auth_user}> method=%m rip=%r")
	if err != nil {
		t.Fatal(err)
	}
	text := "imap-login: Login: user=<" + strings.Repeat(">, orig=<>, auth=<", 300) + ">, method=PLAIN, rip=192.0.2.1"
	if _, err := f.Parse(Message{Program: "dovecot", Text: text}); err == nil {
		t.Error("granted a line with hundreds of readings")
	}
}
