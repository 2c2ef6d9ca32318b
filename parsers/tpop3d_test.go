package parsers

import "testing"

func TestTpop3d(t *testing.T) {
	const tail = ": began session for `alice' with mysql; child PID is 1235"
	runCases(t, Tpop3d{}, []parseCase{
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
