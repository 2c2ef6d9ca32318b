package parsers

import "testing"

func TestPerdition(t *testing.T) {
	const mid = " client-secure=ssl authorisation_id=NONE authentication_id=\"alice\" server=\"b:993\" protocol=IMAP4S server-secure=ssl status="
	runCases(t, perdition{}, []parseCase{
		{"v4", "perdition.imaps", "Auth: 192.0.2.10:50412->203.0.113.5:993" + mid + `"ok"`, "login|192.0.2.10|alice|"},
		{"v6 bare", "perdition.imaps", "Auth: 2001:db8::1:50412->2001:db8::5:993" + mid + `"ok"`, "login|2001:db8::1|alice|"},
		{"v6 brackets", "perdition.imaps", "Auth: [2001:db8::1]:50412->[2001:db8::5]:993" + mid + `"ok"`, "login|2001:db8::1|alice|"},
		{"passwd logged", "perdition", `Auth: 192.0.2.10:1->203.0.113.5:110 client-secure=plaintext authorisation_id=NONE authentication_id="alice" passwd="s3cret" server="b:110" protocol=POP3 server-secure=plaintext status="ok"`, "login|192.0.2.10|alice|"},
		{"old", "perdition", `Auth: 192.0.2.10->203.0.113.5 user="alice" server="b" port="110" status="ok"`, "login|192.0.2.10|alice|"},
		{"old with port", "perdition", `Auth: 192.0.2.10:4000->203.0.113.5:110 user="alice" server="b" port="110" status="ok"`, "login|192.0.2.10|alice|"},

		{"failed", "perdition.imaps", "Auth: 192.0.2.10:50412->203.0.113.5:993" + mid + `"failed: Re-Authentication Failure"`, "nomatch"},
		{"ok not last", "perdition.imaps", `Auth: 192.0.2.10:50412->203.0.113.5:993 status="ok" protocol=IMAP4S`, "nomatch"},
		{"sieve", "perdition", "Auth: 192.0.2.10:50412->203.0.113.5:4190 client-secure=ssl authorisation_id=NONE authentication_id=\"alice\" server=\"b:4190\" protocol=managesieve server-secure=ssl status=\"ok\"", "nomatch"},
		{"no arrow", "perdition.imaps", "Auth: 192.0.2.10:50412" + mid + `"ok"`, "refused"},
		{"no port", "perdition.imaps", "Auth: 192.0.2.10->203.0.113.5:993" + mid + `"ok"`, "refused"},
		{"port not number", "perdition.imaps", "Auth: 192.0.2.10:x->203.0.113.5:993" + mid + `"ok"`, "refused"},
		{"junk after bracket", "perdition.imaps", "Auth: [2001:db8::1]x->[2001:db8::5]:993" + mid + `"ok"`, "refused"},
		{"unterminated bracket", "perdition.imaps", "Auth: [2001:db8::1->[2001:db8::5]:993" + mid + `"ok"`, "refused"},
		{"two users", "perdition.imaps", `Auth: 192.0.2.10:1->203.0.113.5:993 client-secure=ssl authentication_id="x" authentication_id="y" status="ok"`, "refused"},
		{"unterminated quote", "perdition.imaps", `Auth: 192.0.2.10:1->203.0.113.5:993 client-secure=ssl authentication_id="x status="ok"`, "refused"},
		{"bad key", "perdition.imaps", `Auth: 192.0.2.10:1->203.0.113.5:993 client-secure=ssl Bad="x" status="ok"`, "refused"},
		{"double space", "perdition.imaps", `Auth: 192.0.2.10:1->203.0.113.5:993  client-secure=ssl status="ok"`, "refused"},
	})
}
