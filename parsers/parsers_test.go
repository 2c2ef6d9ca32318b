package parsers

import (
	"errors"
	"strings"
	"testing"
)

// outcome renders a parse result for table tests: "login|addr|user|session",
// "nomatch" or "refused" (an *AddrError; the text is covered by the goldens).
func outcome(t *testing.T, ev Event, err error) string {
	t.Helper()
	if err == nil {
		addr := "-"
		if ev.Addr.IsValid() {
			addr = ev.Addr.String()
		}
		return strings.Join([]string{ev.Kind.String(), addr, ev.User, ev.Session}, "|")
	}
	if errors.Is(err, ErrNoMatch) {
		return "nomatch"
	}
	var ae *AddrError
	if errors.As(err, &ae) {
		return "refused"
	}
	t.Fatalf("unexpected error type %T: %v", err, err)
	return ""
}

type parseCase struct {
	name, program, text, want string
}

func runCases(t *testing.T, p Parser, cases []parseCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := p.Parse(Message{Program: tt.program, Text: tt.text})
			if got := outcome(t, ev, err); got != tt.want {
				t.Errorf("%s.Parse(%q, %q) = %q, want %q", p.Name(), tt.program, tt.text, got, tt.want)
			}
			if err == nil && (ev.Daemon != p.Name() || (ev.Kind != Login && ev.Kind != Logout)) {
				t.Errorf("event %+v: want Daemon %q, Kind login or logout", ev, p.Name())
			}
			if err == nil && ev.Kind == Login && !ev.Addr.IsValid() {
				t.Errorf("login event without an address: %+v", ev)
			}
		})
	}
}

func TestDovecot(t *testing.T) {
	const tail = ", lip=203.0.113.5, mpid=1"
	runCases(t, Dovecot{}, []parseCase{
		{"2.3", "dovecot", "imap-login: Login: user=<a>, method=PLAIN, rip=192.0.2.1" + tail + ", session=<S>", "login|192.0.2.1|a|S"},
		{"2.4", "dovecot", "imap-login: Logged in: user=<a>, method=PLAIN, rip=192.0.2.1" + tail + ", TLS, session=<S>", "login|192.0.2.1|a|S"},
		{"2.4 pop3", "dovecot", "pop3-login: Logged in: user=<a>, method=PLAIN, rip=2001:db8::1" + tail, "login|2001:db8::1|a|"},
		{"1.x tag", "imap-login", "Login: user=<a>, method=PLAIN, rip=192.0.2.1" + tail, "login|192.0.2.1|a|"},
		{"1.x tag info", "pop3-login", "Info: Login: user=<a>, method=PLAIN, rip=192.0.2.1" + tail, "login|192.0.2.1|a|"},
		{"1.x info first", "dovecot", "Info: pop3-login: Login: user=<a>, method=PLAIN, rip=::ffff:192.0.2.1" + tail, "login|192.0.2.1|a|"},
		{"log-file info second", "dovecot", "imap-login: Info: Login: user=<a>, method=PLAIN, rip=192.0.2.1" + tail, "login|192.0.2.1|a|"},
		{"1.x tag with proto prefix", "imap-login", "imap-login: Login: user=<a>, rip=192.0.2.1", "nomatch"},
		{"1.x no mpid, no session", "dovecot", "imap-login: Login: user=<a>, method=PLAIN, rip=192.0.2.1, lip=203.0.113.5, TLS", "login|192.0.2.1|a|"},
		{"TLS error", "dovecot", "imap-login: Login: user=<a>, method=PLAIN, rip=192.0.2.1" + tail + ", TLS handshaking: SSL_accept() failed: x, y, session=<S>", "login|192.0.2.1|a|"},
		{"empty user", "dovecot", "imap-login: Login: user=<>, method=EXTERNAL, rip=192.0.2.1" + tail, "login|192.0.2.1||"},
		// The default format fixes the order; another order is another format.
		{"rip first", "dovecot", "imap-login: Login: rip=192.0.2.2, user=<a>, method=PLAIN", "refused"},
		{"rip last", "dovecot", "imap-login: Login: user=<a>, method=PLAIN, lip=203.0.113.5, rip=192.0.2.3", "refused"},
		{"uppercase v6", "dovecot", "imap-login: Login: user=<a>, method=PLAIN, rip=2001:DB8::5", "login|2001:db8::5|a|"},
		{"loopback", "dovecot", "imap-login: Login: user=<a>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, secured", "login|127.0.0.1|a|"},
		{"private", "dovecot", "imap-login: Login: user=<a>, method=PLAIN, rip=10.1.2.3", "login|10.1.2.3|a|"},
		{"user with comma", "dovecot", "imap-login: Login: user=<a, b>, method=PLAIN, rip=192.0.2.4", "login|192.0.2.4|a, b|"},
		{"user with > , = that reads as nothing", "dovecot", "imap-login: Login: user=<a>, b=c>, method=PLAIN, rip=192.0.2.4, session=<S>", "login|192.0.2.4|a>, b=c|S"},
		{"unterminated user", "dovecot", "imap-login: Login: rip=192.0.2.4, user=<a, b", "refused"},
		{"two sessions", "dovecot", "imap-login: Login: user=<a>, method=PLAIN, rip=192.0.2.5, session=<x>, session=<y>", "refused"},
		{"no method", "dovecot", "imap-login: Login: user=<a>, rip=192.0.2.5", "refused"},

		// Only the genuine rip counts: a user name that reads as other
		// elements changes nothing (one reading) or is refused (two), and
		// one containing "rip=" is refused either way.
		{"rip text inside user", "dovecot", "imap-login: Login: user=<x, rip=203.0.113.66>, method=PLAIN, rip=192.0.2.6", "refused"},
		{"user closes early", "dovecot", "imap-login: Login: user=<x>, rip=203.0.113.66, y=<z>, method=PLAIN, rip=192.0.2.6", "refused"},
		{"user spells elements but no rip", "dovecot", "imap-login: Login: user=<x>, method=PLAIN, lip=192.0.2.66, y=<z>, method=PLAIN, rip=192.0.2.6, session=<S>", "login|192.0.2.6|x>, method=PLAIN, lip=192.0.2.66, y=<z|S"},
		{"issue 11: real Dovecot, no remote IP", "dovecot", "imap-login: Login: user=<x>, rip=203.0.113.66, <>, method=PLAIN, mpid=13349, secured, session=<370BBGphAAAAAAAA>", "refused"},
		{"forged full list, no remote IP", "dovecot", "imap-login: Login: user=<x>, method=PLAIN, rip=203.0.113.66, mpid=1, TLS>, method=PLAIN, mpid=13349, secured, session=<370BBGphAAAAAAAA>", "refused"},
		{"forged list, real rip, bad %c", "dovecot", "imap-login: Login: user=<x>, method=PLAIN, rip=203.0.113.66, mpid=1, TLS>, method=PLAIN, rip=192.0.2.7, lip=192.0.2.1, mpid=13349, secured, session=<S>", "refused"},
		{"forged list, real rip, TLS error", "dovecot", "imap-login: Login: user=<x>, method=PLAIN, rip=203.0.113.66, mpid=1, TLS: e>, method=PLAIN, rip=192.0.2.7, lip=192.0.2.1, mpid=13349, secured, session=<S>", "refused"},
		{"forged list with session, real rip", "dovecot", "imap-login: Login: user=<x>, method=PLAIN, rip=203.0.113.66, session=<q>, method=PLAIN, rip=192.0.2.7, mpid=13349, session=<S>", "refused"},
		{"inject without real rip", "dovecot", "imap-login: Login: user=<x, rip=203.0.113.66, z>, method=PLAIN", "refused"},
		{"inject after rip", "dovecot", "imap-login: Login: rip=192.0.2.6, user=<x, rip=203.0.113.66>", "refused"},
		{"two rips", "dovecot", "imap-login: Login: user=<a>, method=PLAIN, rip=192.0.2.6, rip=192.0.2.7", "refused"},
		{"no rip", "dovecot", "imap-login: Login: user=<a>, method=PLAIN, lip=192.0.2.8", "refused"},
		{"empty <> element", "dovecot", "imap-login: Login: user=<a>, method=PLAIN, rip=192.0.2.8, <>", "refused"},
		{"empty session", "dovecot", "imap-login: Login: user=<a>, method=PLAIN, rip=192.0.2.8, session=<>", "refused"},
		{"unknown key", "dovecot", "imap-login: Login: user=<a>, method=PLAIN, rip=192.0.2.8, foo=bar", "refused"},
		{"trailing junk", "dovecot", "imap-login: Login: user=<a>, method=PLAIN, rip=192.0.2.8 junk", "refused"},
		{"trailing separator", "dovecot", "imap-login: Login: user=<a>, method=PLAIN, rip=192.0.2.8, ", "refused"},
		{"bad rip", "dovecot", "imap-login: Login: user=<a>, method=PLAIN, rip=192.0.2", "refused"},
		{"zone", "dovecot", "imap-login: Login: user=<a>, method=PLAIN, rip=fe80::1%eth0", "refused"},

		{"aborted", "dovecot", "imap-login: Aborted login (auth failed, 1 attempts in 2 secs): user=<a>, rip=192.0.2.1", "nomatch"},
		{"2.4 aborted", "dovecot", "imap-login: Login aborted: Connection closed (auth failed, 3 attempts in 16 secs) (auth_failed): user=<a>, rip=192.0.2.1", "nomatch"},
		{"2.4 proxy failed", "dovecot", "imap-login: Login failed: x: user=<a>, rip=192.0.2.1", "nomatch"},
		{"disconnected", "dovecot", "pop3-login: Disconnected: Inactivity (auth failed, 1 attempts): user=<a>, rip=192.0.2.1", "nomatch"},
		{"referral", "dovecot", "imap-login: Login with referral: user=<a>, rip=192.0.2.1", "nomatch"},
		{"submission", "dovecot", "submission-login: Login: user=<a>, rip=192.0.2.1", "nomatch"},
		{"managesieve", "dovecot", "managesieve-login: Login: user=<a>, rip=192.0.2.1", "nomatch"},
		{"anonymous", "dovecot", "imap-login: Login: user=<anonymous>, method=anonymous, rip=192.0.2.1", "nomatch"},
		{"anonymous named PLAIN", "dovecot", "imap-login: Login: user=<x>, method=PLAIN, rip=203.0.113.66, z>, method=ANONYMOUS, rip=192.0.2.1", "nomatch"},
		{"auth worker", "dovecot", "auth-worker(1): pam(a,192.0.2.1): pam_authenticate() failed", "nomatch"},
		{"post-login", "dovecot", "imap(a)<1><S>: Disconnected: Logged out in=1 out=2", "logout|-|a|S"},
		{"other tag", "imap", "imap-login: Login: user=<a>, rip=192.0.2.1", "nomatch"},
		{"empty", "dovecot", "", "nomatch"},
		{"prefix only", "dovecot", "imap-login: Login: ", "refused"},
	})
}

func TestCourier(t *testing.T) {
	runCases(t, Courier{}, []parseCase{
		{"real pop3", "pop3d", "LOGIN, user=alice, ip=[::ffff:127.0.0.2], port=[51871]", "login|127.0.0.2|alice|127.0.0.2/51871"},
		{"imap protocol", "imapd-ssl", "LOGIN, user=a@example.org, ip=[::ffff:192.0.2.10], port=[50412], protocol=IMAP", "login|192.0.2.10|a@example.org|192.0.2.10/50412"},
		{"v6 stls", "pop3d", "LOGIN, user=b, ip=[2001:db8::25], port=[40001], stls=1", "login|2001:db8::25|b|2001:db8::25/40001"},
		{"old no port", "courierpop3login", "LOGIN, user=c, ip=[192.0.2.11]", "login|192.0.2.11|c|"},
		{"order", "imapd", "LOGIN, ip=[192.0.2.12], user=d", "login|192.0.2.12|d|"},
		{"user with equals", "imapd", "LOGIN, user=a=b, ip=[192.0.2.13]", "login|192.0.2.13|a=b|"},

		{"inject", "imapd", "LOGIN, user=x, ip=[203.0.113.66], ip=[::ffff:192.0.2.14], port=[1]", "refused"},
		{"no ip", "imapd", "LOGIN, user=x, port=[1]", "refused"},
		{"unbracketed", "imapd", "LOGIN, user=x, ip=192.0.2.15", "refused"},
		{"mapped unspecified", "imapd", "LOGIN, user=x, ip=[::ffff:0.0.0.0]", "refused"},

		{"failed", "pop3d", "LOGIN FAILED, user=a, ip=[::ffff:192.0.2.1], port=[1]", "nomatch"},
		{"failed method", "imapd", "LOGIN FAILED, method=PLAIN, ip=[::ffff:192.0.2.1], port=[1]", "nomatch"},
		{"failed with comma", "imapd", "LOGIN, FAILED, user=a, ip=[::ffff:192.0.2.1]", "nomatch"},
		{"no comma", "imapd", "LOGIN user=a, ip=[::ffff:192.0.2.1]", "nomatch"},
		{"logout", "imapd", "LOGOUT, user=a, ip=[::ffff:192.0.2.1], port=[1]", "logout|192.0.2.1|a|192.0.2.1/1"},
		{"front-end logout", "imapd", "LOGOUT, ip=[::ffff:192.0.2.1], port=[1], rcvd=1, sent=2", "nomatch"},
		{"logout without port", "imapd", "LOGOUT, user=a, ip=[::ffff:192.0.2.1]", "nomatch"},
		{"logout two ips", "imapd", "LOGOUT, user=a, ip=[192.0.2.9], ip=[::ffff:192.0.2.1], port=[1]", "nomatch"},
		{"connection", "imapd", "Connection, ip=[::ffff:192.0.2.1], port=[1]", "nomatch"},
		{"timeout", "imapd", "TIMEOUT, user=a, ip=[::ffff:192.0.2.1], port=[7], headers=0", "logout|192.0.2.1|a|192.0.2.1/7"},
		{"disconnected", "imapd", "DISCONNECTED, user=a, ip=[2001:db8::1], port=[8], time=0", "logout|2001:db8::1|a|2001:db8::1/8"},
		{"lowercase", "imapd", "login, user=a, ip=[::ffff:192.0.2.1]", "nomatch"},
	})
}

func TestCyrus(t *testing.T) {
	runCases(t, Cyrus{}, []parseCase{
		{"real", "cyrus/imap", "login: [127.0.0.2] bob plaintext User logged in SESSIONID=<cyrus-866-1-1>", "login|127.0.0.2|bob|cyrus-866-1-1"},
		{"host space", "imap", "login: localhost [127.0.0.1] alice plaintext User logged in SESSIONID=<s>", "login|127.0.0.1|alice|s"},
		{"host glued", "imapd", "login: client.example.net[198.51.100.20] carol plaintext User logged in", "login|198.51.100.20|carol|"},
		{"mapped", "pop3", "login: [::ffff:192.0.2.30] d PLAIN User logged in", "login|192.0.2.30|d|"},
		{"v6", "pop3s", "login: h.example [2001:DB8::25] e PLAIN+TLS User logged in", "login|2001:db8::25|e|"},
		{"unknown", "imap", "login: [unknown] a plaintext User logged in", "refused"},
		{"zone", "imap", "login: [fe80::1%eth0] a plaintext User logged in", "refused"},
		{"anonymous", "imap", "login: [192.0.2.1] anonymous guest", "nomatch"},
		{"anonymous shaped", "imap", "login: [192.0.2.1] anonymous x plaintext User logged in", "nomatch"},
		{"Anonymous", "imap", "login: [192.0.2.1] Anonymous PLAIN User logged in", "nomatch"},
		{"badlogin", "imap", "badlogin: [192.0.2.1] plaintext (a) [SASL(-13): authentication failure: checkpass failed]", "nomatch"},
		{"two host tokens", "imap", "login: a b [192.0.2.1] u PLAIN User logged in", "nomatch"},
		{"user with address", "imap", "login: [192.0.2.1] x [203.0.113.66] plaintext User logged in", "nomatch"},
		{"trailing text", "imap", "login: [192.0.2.1] a plaintext User logged in now", "nomatch"},
		{"unterminated session", "imap", "login: [192.0.2.1] a plaintext User logged in SESSIONID=<s", "nomatch"},
		{"no mech", "imap", "login: [192.0.2.1] a User logged in", "nomatch"},
		{"missing bracket", "imap", "login: [192.0.2.1 a plaintext User logged in", "nomatch"},

		{"logfmt quoted host", "imap", `event=login.good session_id=s1 r.clienthost="client.example.net [192.0.2.10]" u.username=alice login.mech=PLAIN login.tls=1`, "login|192.0.2.10|alice|s1"},
		{"logfmt bare host", "pop3", `event=login.good session_id=s2 r.clienthost=[198.51.100.50] u.username=bob login.mech=plaintext login.tls=0`, "login|198.51.100.50|bob|s2"},
		{"logfmt v6", "imap", `event=login.good r.clienthost=[2001:db8::51] u.username=c login.mech=PLAIN`, "login|2001:db8::51|c|"},
		{"logfmt r.sessionid", "imap", `event=login.good r.sessionid=s3 r.clienthost=[192.0.2.1] u.username=c`, "login|192.0.2.1|c|s3"},
		{"logfmt quoted user", "imap", `event=login.good r.clienthost=[192.0.2.1] u.username="john smith" login.mech=PLAIN`, "login|192.0.2.1|john smith|"},
		{"logfmt escapes", "imap", `event=login.good r.clienthost=[192.0.2.1] u.username="a\"b\\c\x{41}\n" login.mech=PLAIN`, "login|192.0.2.1|a\"b\\cA\n|"},
		{"logfmt trailing space", "imap", `event=login.good r.clienthost=[192.0.2.1] u.username=c `, "login|192.0.2.1|c|"},
		{"logfmt anonymous 0", "imap", `event=login.good r.clienthost=[192.0.2.1] u.username=c login.anonymous=0`, "login|192.0.2.1|c|"},
		{"logfmt anonymous", "imap", `event=login.good r.clienthost=[192.0.2.1] login.mech=ANONYMOUS login.anonymous=1 login.password="x"`, "nomatch"},
		{"logfmt anonymous with user", "imap", `event=login.good r.clienthost=[192.0.2.1] u.username=c login.anonymous=1`, "nomatch"},
		{"logfmt bad", "imap", `event=login.bad r.clienthost=[192.0.2.1] u.username=c error="authentication failure"`, "nomatch"},
		{"logfmt goodbye", "imap", `event=login.goodbye r.clienthost=[192.0.2.1] u.username=c`, "nomatch"},
		{"logfmt not first", "imap", `session_id=s event=login.good r.clienthost=[192.0.2.1] u.username=c`, "nomatch"},
		{"logfmt two events", "imap", `event=login.good event=login.good r.clienthost=[192.0.2.1] u.username=c`, "nomatch"},
		{"logfmt two users", "imap", `event=login.good r.clienthost=[192.0.2.1] u.username=c u.username=d`, "nomatch"},
		{"logfmt null user", "imap", `event=login.good r.clienthost=[192.0.2.1] u.username=~null~`, "nomatch"},
		{"logfmt injected host", "imap", `event=login.good u.username="x r.clienthost=[203.0.113.66]" login.mech=PLAIN`, "refused"},
		{"logfmt two hosts", "imap", `event=login.good r.clienthost=[203.0.113.66] r.clienthost=[192.0.2.1] u.username=c`, "refused"},
		{"logfmt host without address", "imap", `event=login.good r.clienthost=client.example.net u.username=c`, "refused"},
		{"logfmt host trailing", "imap", `event=login.good r.clienthost="[192.0.2.1] x" u.username=c`, "refused"},
		{"logfmt unterminated", "imap", `event=login.good r.clienthost="[192.0.2.1] u.username=c`, "nomatch"},
		{"logfmt bad escape", "imap", `event=login.good r.clienthost=[192.0.2.1] u.username="a\q"`, "nomatch"},
		{"logfmt bad hex", "imap", `event=login.good r.clienthost=[192.0.2.1] u.username="a\x{4g}"`, "nomatch"},
		{"logfmt glued quote", "imap", `event=login.good r.clienthost="[192.0.2.1]"u.username=c`, "nomatch"},
		{"logfmt bare equals", "imap", `event=login.good r.clienthost=[192.0.2.1] u.username=c=d`, "nomatch"},
		{"logfmt no key", "imap", `event=login.good =x r.clienthost=[192.0.2.1] u.username=c`, "nomatch"},
	})
}

func TestUW(t *testing.T) {
	runCases(t, UW{}, []parseCase{
		{"login nmsgs", "ipop3d", "Login user=alice host=client.example.net [192.0.2.10] nmsgs=0/0", "login|192.0.2.10|alice|"},
		{"authenticated", "imapd", "Authenticated user=bob host=[198.51.100.7]", "login|198.51.100.7|bob|"},
		{"auth", "ipop3d", "Auth user=c host=[203.0.113.31] nmsgs=5/0", "login|203.0.113.31|c|"},
		{"apop", "ipop3d", "APOP user=d host=h.example [192.0.2.32] nmsgs=2/1", "login|192.0.2.32|d|"},
		{"mapped", "imapd", "Login user=e host=[::ffff:192.0.2.20]", "login|192.0.2.20|e|"},
		{"v6", "imaps", "Login user=f host=h.example [2001:DB8::30]", "login|2001:db8::30|f|"},
		{"glued host", "imapd", "Login user=g host=h.example[192.0.2.33]", "login|192.0.2.33|g|"},
		{"user with space", "imapd", "Login user=a b host=[192.0.2.34]", "login|192.0.2.34|a b|"},

		{"name only", "ipop3d", "Login user=a host=YahooBB218.bbtec.net nmsgs=0/0", "refused"},
		{"unknown", "imapd", "Login user=a host=UNKNOWN", "refused"},
		{"truncated", "imapd", "Login user=a host=very.long.name [192.0.2.1", "refused"},
		{"inject", "imapd", "Login user=x host=[203.0.113.66] host=[192.0.2.40]", "refused"},
		{"inject nmsgs", "ipop3d", "Login user=x host=[203.0.113.66] nmsgs=0/0 host=[192.0.2.41] nmsgs=0/0", "refused"},
		{"bad address", "imapd", "Login user=a host=[999.1.1.1]", "refused"},

		{"two addresses", "imapd", "Login user=x host=[192.0.2.42] [203.0.113.66]", "nomatch"},
		{"bad nmsgs", "ipop3d", "Login user=a host=[192.0.2.1] nmsgs=1", "nomatch"},
		{"failed", "imapd", "Login failed user=a auth=a host=h [192.0.2.1]", "nomatch"},
		{"failure", "ipop3d", "Login failure user=a host=h [192.0.2.1]", "nomatch"},
		{"excessive", "imapd", "Login excessive login failures user=a auth=a host=[192.0.2.1]", "nomatch"},
		{"disabled", "imapd", "Login disabled user=a auth=a host=[192.0.2.1]", "nomatch"},
		{"logout without pid", "imapd", "Logout user=a host=[192.0.2.1]", "nomatch"},
		{"autologout without pid", "imapd", "Autologout user=a host=[192.0.2.1]", "nomatch"},
		{"preauth", "imapd", "Preauthenticated user=a host=UNKNOWN", "nomatch"},
		{"preauth with ip", "imapd", "Preauthenticated user=a host=[192.0.2.1]", "nomatch"},
		{"authenticate failure", "imapd", "AUTHENTICATE PLAIN failure host=[192.0.2.1]", "nomatch"},
		{"killed", "imapd", "Killed (lost mailbox lock) user=a host=[192.0.2.1]", "nomatch"},
		{"proxy", "imapd", "IMAP login to host=r.example user=a host=[192.0.2.1]", "nomatch"},
		{"anonymous", "imapd", "Login anonymous=guest host=[192.0.2.1]", "nomatch"},
		{"no host", "imapd", "Login user=a", "nomatch"},
		{"empty user", "imapd", "Login user= host=[192.0.2.1]", "nomatch"},
	})
}

func TestSetSharedTags(t *testing.T) {
	set := NewSet(Builtin()...)
	tests := []struct{ program, text, daemon string }{
		{"imapd", "LOGIN, user=a, ip=[::ffff:192.0.2.1], port=[1], protocol=IMAP", "courier"},
		{"imapd", "Login user=a host=[192.0.2.1]", "uw"},
		{"imapd", "login: [192.0.2.1] a plaintext User logged in", "cyrus"},
		{"IMAPD", "login: [192.0.2.1] a plaintext User logged in", "cyrus"},
		{"pop3d", "LOGIN, user=a, ip=[::ffff:192.0.2.1]", "courier"},
		{"pop3d", "login: [192.0.2.1] a plaintext User logged in", "cyrus"},
		{"pop3s", "Login user=a host=[192.0.2.1] nmsgs=0/0", "uw"},
		{"pop3s", "login: [192.0.2.1] a plaintext User logged in", "cyrus"},
	}
	for _, tt := range tests {
		ev, err := set.Parse(Message{Program: tt.program, Text: tt.text})
		if err != nil || ev.Daemon != tt.daemon {
			t.Errorf("Set.Parse(%q, %q) = %+v, %v; want daemon %q", tt.program, tt.text, ev, err, tt.daemon)
		}
	}
	// An AddrError from one parser is reported only when no other matched.
	_, err := set.Parse(Message{Program: "imapd", Text: "Login user=a host=UNKNOWN"})
	var ae *AddrError
	if !errors.As(err, &ae) {
		t.Errorf("Set.Parse(UW host=UNKNOWN) = %v, want *AddrError", err)
	}
}

func TestBuiltinProgramsLowerCase(t *testing.T) {
	names := map[string]bool{}
	for _, p := range Builtin() {
		if names[p.Name()] {
			t.Errorf("duplicate parser name %q", p.Name())
		}
		names[p.Name()] = true
		for _, prog := range p.Programs() {
			if prog != strings.ToLower(prog) || prog == "" {
				t.Errorf("%s: program %q must be non-empty lower case", p.Name(), prog)
			}
		}
	}
}

func TestParseAddr(t *testing.T) {
	tests := []struct {
		in, want string // want "" means refused
	}{
		{"192.0.2.1", "192.0.2.1"},
		{"[192.0.2.1]", "192.0.2.1"},
		{"2001:DB8::5", "2001:db8::5"},
		{"[2001:db8:0:0:0:0:0:5]", "2001:db8::5"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"[::ffff:192.0.2.1]", "192.0.2.1"},
		{"127.0.0.1", "127.0.0.1"},
		{"::1", "::1"},
		{"10.0.0.1", "10.0.0.1"},
		{"fd00:1:2:3::1", "fd00:1:2:3::1"},
		{"fe80::1%eth0", ""},
		{"[fe80::1%eth0]", ""},
		{"192.0.2.1%eth0", ""},
		{"fe80::1", ""},
		{"169.254.1.1", ""},
		{"0.0.0.0", ""},
		{"::", ""},
		{"::ffff:0.0.0.0", ""},
		{"0.1.2.3", ""},
		{"224.0.0.1", ""},
		{"ff02::1", ""},
		{"255.255.255.255", ""},
		{"::ffff:255.255.255.255", ""},
		{"240.0.0.1", ""},
		{"999.1.1.1", ""},
		{"01.2.3.4", ""},
		{"192.0.2", ""},
		{"[192.0.2.1", ""},
		{"192.0.2.1]", ""},
		{"[[192.0.2.1]]", ""},
		{"", ""},
		{"[]", ""},
		{"unknown", ""},
		{" 192.0.2.1", ""},
	}
	for _, tt := range tests {
		a, err := ParseAddr(tt.in)
		if tt.want == "" {
			var ae *AddrError
			if !errors.As(err, &ae) {
				t.Errorf("ParseAddr(%q) = %v, %v; want *AddrError", tt.in, a, err)
			}
			continue
		}
		if err != nil || a.String() != tt.want || a.Is4In6() {
			t.Errorf("ParseAddr(%q) = %v, %v; want %s", tt.in, a, err, tt.want)
		}
	}
}

func TestAddrErrorText(t *testing.T) {
	_, err := ParseAddr("fe80::1%eth0")
	if got, want := err.Error(), `address "fe80::1%eth0": has an IPv6 zone`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e := &AddrError{Addr: "a\tb\"" + strings.Repeat("x", 100), Reason: "r"}
	if got := e.Error(); strings.ContainsAny(got, "\t\n") || !strings.HasSuffix(got, ": r") {
		t.Errorf("Error() = %q: want control characters escaped and the address shortened", got)
	}
}

func TestSessionEnds(t *testing.T) {
	runCases(t, Dovecot{}, []parseCase{
		{"2.3 imap", "dovecot", "imap(alice)<4711><kX3b8Qp7aMDAAAIK>: Disconnected: Logged out in=123 out=456", "logout|-|alice|kX3b8Qp7aMDAAAIK"},
		{"2.3 pop3", "dovecot", "pop3(bob@example.org)<12><abc>: Disconnected: Logged out top=0/0, retr=0/0", "logout|-|bob@example.org|abc"},
		{"inactivity", "dovecot", "imap(a)<1><S>: Disconnected for inactivity in=0 out=1", "logout|-|a|S"},
		{"connection closed", "dovecot", "imap(a)<1><S>: Connection closed (IDLE running for 0.001 + waiting input for 1800 secs) in=1 out=2", "logout|-|a|S"},
		{"user with brackets", "dovecot", "imap(a)<9><x>)<1><S>: Disconnected: Logged out", "logout|-|a)<9><x>|S"},
		{"other mail-process line", "dovecot", "imap(a)<1><S>: Error: Mailbox INBOX: Permission denied", "nomatch"},
		{"no session", "dovecot", "imap(a): Disconnected: Logged out", "nomatch"},
		{"not the dovecot tag", "imap-login", "imap(a)<1><S>: Disconnected: Logged out", "nomatch"},
		{"lmtp", "dovecot", "lmtp(a)<1><S>: Disconnected", "nomatch"},
	})
	uw := UW{}
	for _, tt := range []struct{ text, want string }{
		{"Logout user=alice host=client.example.net [192.0.2.10]", "logout|-|alice|mx1/imapd[77]"},
		{"Autologout user=alice host=[192.0.2.10]", "logout|-|alice|mx1/imapd[77]"},
		{"Killed (lost mailbox lock) user=alice host=[192.0.2.10]", "logout|-|alice|mx1/imapd[77]"},
		{"Login user=alice host=[192.0.2.10]", "login|192.0.2.10|alice|mx1/imapd[77]"},
	} {
		ev, err := uw.Parse(Message{Host: "mx1", Program: "imapd", PID: "77", Text: tt.text})
		if got := outcome(t, ev, err); got != tt.want {
			t.Errorf("uw.Parse(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}
