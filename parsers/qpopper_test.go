package parsers

import "testing"

func TestQpopper(t *testing.T) {
	const login = `(v4.0.9) POP login by user "alice" at (client.example.net) `
	runCases(t, qpopper{}, []parseCase{
		{"login", "qpopper", login + "192.0.2.10", "login|192.0.2.10|alice|"},
		{"login whence", "qpopper", login + "192.0.2.10 [pop_log.c:244]", "login|192.0.2.10|alice|"},
		{"login mapped", "qpopper", login + "::ffff:192.0.2.10", "login|192.0.2.10|alice|"},
		{"user with quote", "qpopper", `(v4.0.9) POP login by user "a"b" at (h) 192.0.2.10`, `login|192.0.2.10|a"b|`},
		{"stats 7", "qpopper", "Stats: alice 0 0 3 5120 h 192.0.2.10", "login|192.0.2.10|alice|"},
		{"stats 6", "qpopper", "Stats: alice 0 0 3 5120 192.0.2.10", "login|192.0.2.10|alice|"},
		{"stats whence", "qpopper", "Stats: alice 0 0 3 5120 h 192.0.2.10 [pop_updt.c:283]", "login|192.0.2.10|alice|"},

		{"servicing", "qpopper", `(v4.0.9) Servicing request from "h" at 192.0.2.10`, "nomatch"},
		{"no version", "qpopper", `POP login by user "alice" at (h) 192.0.2.10`, "nomatch"},
		{"empty user", "qpopper", `(v4.0.9) POP login by user "" at (h) 192.0.2.10`, "nomatch"},
		{"stats 8", "qpopper", "Stats: alice 0 0 3 5120 h 192.0.2.10 x", "nomatch"},
		{"stats double space", "qpopper", "Stats: alice  0 0 3 5120 h 192.0.2.10", "nomatch"},
		{"stats 5", "qpopper", "Stats: alice 0 0 3 5120", "refused"},
		{"second at", "qpopper", `(v4.0.9) POP login by user "x" at (h) 203.0.113.66" at (h) 192.0.2.10`, "refused"},
		{"no paren", "qpopper", `(v4.0.9) POP login by user "x" at (h 192.0.2.10`, "refused"},
		{"bad whence kept", "qpopper", login + "192.0.2.10 [pop log.c:244]", "refused"},
	})
}
