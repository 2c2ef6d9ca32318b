package parsers

import (
	"strings"
	"testing"
)

func TestTpop3d(t *testing.T) {
	const tail = ": began session for `alice' with mysql; child PID is 1235"
	runCases(t, tpop3d{}, []parseCase{
		{"1.4", "tpop3d", "fork_child: [7]192.0.2.10/example.org" + tail, "login|192.0.2.10|alice|"},
		{"no domain", "tpop3d", "fork_child: [7]192.0.2.10" + tail, "login|192.0.2.10|alice|"},
		{"1.5", "tpop3d", "fork_child: [7]alice(192.0.2.10)" + tail, "login|192.0.2.10|alice|"},
		{"user with quote", "tpop3d", "fork_child: [7]192.0.2.10/d: began session for `a' b' with x; child PID is 1", "login|192.0.2.10|a' b|"},

		{"authcontext", "tpop3d", "authcontext_new_user_pass: began session for `alice' with mysql; uid 1, gid 1", "nomatch"},
		{"fd not a number", "tpop3d", "fork_child: [x]192.0.2.10/example.org" + tail, "nomatch"},
		{"no pid", "tpop3d", "fork_child: [7]192.0.2.10/example.org: began session for `alice' with mysql", "nomatch"},
		{"no began", "tpop3d", "fork_child: [7]192.0.2.10/example.org: setuid(0) failed", "nomatch"},
		{"unbalanced paren", "tpop3d", "fork_child: [7]alice192.0.2.10)" + tail, "refused"},
		{"empty id", "tpop3d", "fork_child: [7]" + tail, "refused"},
	})
}

// In 1.5 the client id is "[fd]user(address)", and the user name is the
// client's: it must not be able to end the id early with an address of its
// choosing.
func TestTpop3dUserInjection(t *testing.T) {
	const u = "x(203.0.113.66): began session for `y' with z; child PID is 1"
	runCases(t, tpop3d{}, []parseCase{
		{"id ended by the user name", "tpop3d", "fork_child: [8]" + u + "(192.0.2.11): began session for `" + u + "' with ldap; child PID is 1238", "refused"},
		// 1.5.0 writes the typed credential in the id and the looked-up
		// user after "for": a split that reads another address refuses.
		{"forged split after the id", "tpop3d", "fork_child: [8]a(192.0.2.11): began session for `" + u + "' with ldap; child PID is 1238", "refused"},
		// Only one split names an address, so it is the one tpop3d made.
		{"one reading", "tpop3d", "fork_child: [8]x/y: began session for `a' with ldap; child PID is 1238(203.0.113.66): began session for `x' with ldap; child PID is 1238", "login|203.0.113.66|x|"},
		{"driver forged in the user name", "tpop3d", "fork_child: [8]a(192.0.2.11): began session for `b' with x; child PID is 2' with ldap; child PID is 1238", "login|192.0.2.11|b' with x; child PID is 2|"},
		{"many splits", "tpop3d", "fork_child: [8]" + strings.Repeat("): began session for `", 40) + "' with ldap; child PID is 1", "refused"},
	})
}
