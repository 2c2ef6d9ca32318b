package parsers

import "testing"

func TestSolidPop3d(t *testing.T) {
	runCases(t, solidPop3d{}, []parseCase{
		{"logextend", "solid-pop3d", "user abimail authenticated - 192.0.2.10", "login|192.0.2.10|abimail|"},
		{"logextend spop3d", "spop3d", "user bob authenticated - 198.51.100.7", "login|198.51.100.7|bob|"},
		{"logextend v6", "spop3d", "user c authenticated - 2001:db8::7", "login|2001:db8::7|c|"},
		{"logextend mapped", "spop3d", "user d authenticated - ::ffff:203.0.113.8", "login|203.0.113.8|d|"},
		{"connect", "spop3d", "connect from 192.0.2.11", "connect|192.0.2.11||"},
		{"auth", "spop3d", "user erin authenticated", "auth|-|erin|"},

		{"no such user", "solid-pop3d", "authentication failed: no such user: adrian - 203.0.113.66", "fail|-||"},
		{"cannot map", "spop3d", "authentication failed: can't map user name: x - 203.0.113.66", "fail|-||"},
		{"failed for user", "spop3d", "authentication failed for user x - 203.0.113.66", "fail|-||"},
		{"failed mapped", "spop3d", "authentication failed for mapped user x - 203.0.113.66", "fail|-||"},
		{"apop failed", "spop3d", "APOP authentication failed for user x - 203.0.113.66", "fail|-||"},
		{"root", "spop3d", "root login not allowed - 203.0.113.66", "fail|-||"},
		{"apop secret", "spop3d", "can't find APOP secret for user x - 203.0.113.66", "fail|-||"},
		{"failed short", "spop3d", "authentication failed for user x", "fail|-||"},

		{"inject", "spop3d", "user x authenticated - 203.0.113.66 authenticated - 192.0.2.1", "refused"},
		{"name", "spop3d", "user x authenticated - unknown", "refused"},
		{"reserved", "spop3d", "user x authenticated - 240.0.0.1", "refused"},
		{"empty addr", "spop3d", "user x authenticated - ", "refused"},
		{"connect hostname", "spop3d", "connect from client.example.net", "refused"},
		{"connect trailing", "spop3d", "connect from 192.0.2.1 x", "refused"},

		{"not authenticated", "spop3d", "user x not authenticated - 192.0.2.1", "nomatch"},
		{"no verb", "spop3d", "user x", "nomatch"},
		{"empty user", "spop3d", "user  authenticated - 192.0.2.1", "nomatch"},
		{"upper case", "spop3d", "User x authenticated - 192.0.2.1", "nomatch"},
		{"connect upper", "spop3d", "Connect from 192.0.2.1", "nomatch"},
		{"mailbox", "solid-pop3d", "mailbox: can't open mailbox file: /var/mail/abimail", "nomatch"},
	})
}
