package parsers

import "testing"

func TestVpopmail(t *testing.T) {
	runCases(t, vpopmail{}, []parseCase{
		{"pop3", "vpopmail", "vchkpw-pop3: (PLAIN) login success alice@example.org:192.0.2.10", "login|192.0.2.10|alice@example.org|"},
		{"cram", "vpopmail", "vchkpw-995: (CRAM-MD5) login success alice@example.org:192.0.2.10", "login|192.0.2.10|alice@example.org|"},
		{"v6", "vpopmail", "vchkpw-imap: (PLAIN) login success alice@example.org:2001:db8::1", "login|2001:db8::1|alice@example.org|"},
		{"system v6", "vpopmail", "vchkpw-pop3: system password login success alice:2001:db8::1", "login|2001:db8::1|alice|"},
		{"old", "vpopmail", "vchkpw: login [alice] from 192.0.2.10", "login|192.0.2.10|alice|"},
		{"old success", "vpopmail", "vchkpw: login success alice@example.org:192.0.2.10", "login|192.0.2.10|alice@example.org|"},

		{"smtp", "vpopmail", "vchkpw-smtp: (PLAIN) login success alice@example.org:192.0.2.10", "nomatch"},
		{"submission", "vpopmail", "vchkpw-submission: (PLAIN) login success alice@example.org:192.0.2.10", "nomatch"},
		{"webmail", "vpopmail", "vchkpw-webmail: (PLAIN) login success alice@example.org:127.0.0.1", "nomatch"},
		{"bare dash", "vpopmail", "vchkpw-: (PLAIN) login success alice@example.org:192.0.2.10", "nomatch"},
		{"other name", "vpopmail", "vdelivermail: (PLAIN) login success alice@example.org:192.0.2.10", "nomatch"},
		{"fail", "vpopmail", "vchkpw-pop3: password fail alice@example.org:192.0.2.10", "nomatch"},
		{"type with space", "vpopmail", "vchkpw-pop3: (A B) login success alice@example.org:192.0.2.10", "nomatch"},
		{"empty type", "vpopmail", "vchkpw-pop3: () login success alice@example.org:192.0.2.10", "nomatch"},
		{"old on new name", "vpopmail", "vchkpw-pop3: login [alice] from 192.0.2.10", "nomatch"},
		{"no user", "vpopmail", "vchkpw-pop3: (PLAIN) login success @example.org:192.0.2.10", "refused"},
		{"no domain", "vpopmail", "vchkpw-pop3: (PLAIN) login success alice@:192.0.2.10", "refused"},
		{"two at", "vpopmail", "vchkpw-pop3: (PLAIN) login success a@b@example.org:192.0.2.10", "refused"},
		{"system no addr", "vpopmail", "vchkpw-pop3: system password login success alice", "refused"},
	})
}
