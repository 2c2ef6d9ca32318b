package parsers

import (
	"strings"
	"testing"
)

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

func TestDovecotSessionEnds(t *testing.T) {
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
}

// A user name (auth_username_chars empty) may spell a whole mail-process
// prefix with another session's id: that must not end the other session.
func TestDovecotSessionEndUserInjection(t *testing.T) {
	runCases(t, Dovecot{}, []parseCase{
		{"forged prefix in the user name", "dovecot", "imap(x)<1><VICTIMSESS>: Disconnected: y)<4711><ownsess>: Disconnected: Logged out in=1 out=2", "nomatch"},
		{"message holding a prefix", "dovecot", "imap(bob)<4711><ownsess>: Disconnected: x)<1><ownsess>: Logged out", "logout|-|bob|ownsess"},
		{"many splits", "dovecot", "imap(a)<1><s>: Disconnected" + strings.Repeat(">: ", 40), "nomatch"},
	})
}
