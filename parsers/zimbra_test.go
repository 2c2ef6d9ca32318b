package parsers

import "testing"

func TestZimbra(t *testing.T) {
	const head = "2018-09-18 00:21:18,787 INFO  [ImapServer-138] "
	const msg = " imap - user alice@example.org authenticated, mechanism=LOGIN"
	runCases(t, zimbra{}, []parseCase{
		{"imap", "mailboxlog", head + "[name=alice@example.org;ip=10.0.0.5;oip=192.0.2.10;]" + msg, "login|192.0.2.10|alice@example.org|"},
		{"oip first", "mailboxlog", head + "[oip=192.0.2.10;ip=10.0.0.5;]" + msg, "login|192.0.2.10|alice@example.org|"},
		{"no date", "mailboxlog", "INFO  [ImapServer-138] [ip=10.0.0.5;oip=192.0.2.10;]" + msg, "login|192.0.2.10|alice@example.org|"},
		{"escaped semicolons", "mailboxlog", head + "[ip=10.0.0.5;ua=a;;;oip=192.0.2.10;via=b;;;;;]" + msg, "login|192.0.2.10|alice@example.org|"},
		{"tls", "mailboxlog", head + "[ip=10.0.0.5;oip=192.0.2.10;]" + msg + " [TLS]", "login|192.0.2.10|alice@example.org|"},

		{"no authenticated", "mailboxlog", head + "[ip=10.0.0.5;oip=192.0.2.10;] imap - IDLE", "nomatch"},
		{"empty context", "mailboxlog", head + "[]" + msg, "refused"},
		{"no oip", "mailboxlog", head + "[name=alice@example.org;ip=10.0.0.5;]" + msg, "refused"},
		{"oip in ua", "mailboxlog", head + "[ip=10.0.0.5;ua=x;;oip=203.0.113.66;;;]" + msg, "refused"},
		{"two oip", "mailboxlog", head + "[oip=203.0.113.66;oip=192.0.2.10;]" + msg, "nomatch"},
		{"unterminated context", "mailboxlog", head + "[ip=10.0.0.5;oip=192.0.2.10" + msg, "nomatch"},
		{"key with caps", "mailboxlog", head + "[IP=10.0.0.5;oip=192.0.2.10;]" + msg, "nomatch"},
		{"value without semicolon end", "mailboxlog", head + "[ip=10.0.0.5;oip=192.0.2.10]" + msg, "nomatch"},
		{"warn", "mailboxlog", "2018-09-18 00:21:18,787 WARN  [ImapServer-138] [ip=10.0.0.5;oip=192.0.2.10;]" + msg, "nomatch"},
		{"no thread", "mailboxlog", "2018-09-18 00:21:18,787 INFO  [ip=10.0.0.5;oip=192.0.2.10;]" + msg, "nomatch"},
		{"soap", "mailboxlog", head + "[ip=10.0.0.5;oip=192.0.2.10;] soap - user alice authenticated, mechanism=LOGIN", "nomatch"},
		{"user with space", "mailboxlog", head + "[ip=10.0.0.5;oip=192.0.2.10;] imap - user a b authenticated, mechanism=LOGIN", "nomatch"},
		{"failed", "mailboxlog", head + "[ip=10.0.0.5;oip=192.0.2.10;] imap - authentication failed for [x authenticated, mechanism=LOGIN]", "nomatch"},
	})
}
