package parsers

import "testing"

func TestAppleMail(t *testing.T) {
	runCases(t, appleMail{}, []parseCase{
		{"plain", "applemailserver", `IMAP User "alice" log on successful from 192.0.2.10`, "login|192.0.2.10|alice|"},
		{"prefixed", "applemailserver", `Mar 21 2003 10:15:05 IMAP User "alice" log on successful from 192.0.2.10`, "login|192.0.2.10|alice|"},
		{"quote in user", "mailservice", `IMAP User "a"b" log on successful from 192.0.2.10`, `login|192.0.2.10|a"b|`},

		{"prefixed with pid", "applemailserver", `Mar 21 2003 10:15:05 [311] IMAP User "alice" log on successful from 192.0.2.10`, "login|192.0.2.10|alice|"},
		{"issue 11: failure quoting a success", "applemailserver", `IMAP Authentication failed for user: x IMAP User "y" log on successful from 203.0.113.134`, "nomatch"},
		{"other prefix", "applemailserver", `Mar 21 2003 10:15:05 x IMAP User "alice" log on successful from 192.0.2.10`, "nomatch"},
		{"space before", "applemailserver", ` IMAP User "alice" log on successful from 192.0.2.10`, "nomatch"},
		{"glued prefix", "applemailserver", `xIMAP User "alice" log on successful from 192.0.2.10`, "nomatch"},
		{"failed", "applemailserver", `IMAP User "alice" log on failed from 192.0.2.10`, "nomatch"},
		{"trailing text", "applemailserver", `IMAP User "alice" log on successful from 192.0.2.10 x`, "refused"},
		{"twice", "applemailserver", `IMAP User "x" log on successful from 203.0.113.66" log on successful from 192.0.2.10`, "refused"},
	})
}
