package syslogmsg

import (
	"strings"
	"testing"
)

// TestEnvelopeRefusesBadHeader holds that a 3164 header no syslog daemon
// writes is refused, never split some other way: a HOSTNAME holding a
// control character (a TAB is no field separator, so "mx<TAB>sshd[1]:" is
// one word and the "dovecot:" after it would become the tag of what is
// really sshd's message), and a PRI over 191, which the fast path refuses
// and the slow path used to take.
func TestEnvelopeRefusesBadHeader(t *testing.T) {
	const login = "imap-login: Login: user=<u>, method=PLAIN, rip=203.0.113.7, lip=192.0.2.1, mpid=1, session=<abc>"
	for _, in := range []string{
		"<38>Nov 21 10:00:00 mx\tsshd[1]: dovecot: " + login,
		"<38>Nov 21 10:00:00 mx\tsshd[1]:\tdovecot: " + login,
		"<38>Nov 21 10:00:00 mx\tdovecot: " + login,
		"<38>Nov 21 10:00:00 mx\x01sshd: dovecot: " + login,
		"<38>Nov 21 10:00:00 mx\x7fsshd: dovecot: " + login,
		"<38>Nov 21 10:00:00 mx\tfoo dovecot: " + login,
		"<38>Nov 21 10:00:00 mx\rfoo dovecot: " + login,
		"Nov 21 10:00:00 mx\tsshd[1]: dovecot: " + login,
		"<38>2026-11-21T10:00:00Z mx\tsshd[1]: dovecot: " + login,
		"<999>Nov 21 10:00:00 mx dovecot: " + login,
		"<192>Nov 21 10:00:00 mx dovecot: " + login,
		"<999>mx dovecot: " + login,
	} {
		env, err := ParseEnvelope([]byte(in))
		if err == nil {
			t.Errorf("%q: read as %+v, want it refused", in, env)
		}
		if strings.Contains(env.Text, "rip=") && env.Program != "" {
			t.Errorf("%q: a login text under program %q", in, env.Program)
		}
		if sp, ok := FastSpans([]byte(in)); ok {
			t.Errorf("%q: fast path reads program %q", in, sp.ProgramBytes([]byte(in)))
		}
	}
}
