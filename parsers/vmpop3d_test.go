package parsers

import "testing"

func TestVMPop3d(t *testing.T) {
	runCases(t, vmPop3d{}, []parseCase{
		{"one line", "vm-pop3d", "User 'test@example.org' logged in from 192.0.2.10, nmsgs=3", "login|192.0.2.10|test@example.org|"},
		{"one line bare", "vm-pop3d", "User 'bob' logged in from 198.51.100.7", "login|198.51.100.7|bob|"},
		{"one line virtual", "vm-pop3d", "User 'carol' of 'example.org' logged in from 203.0.113.8", "login|203.0.113.8|carol@example.org|"},
		{"quote in name", "vm-pop3d", "User 'o'neil' logged in from 192.0.2.9", "login|192.0.2.9|o'neil|"},
		{"connect", "vm-pop3d", "Connect from 192.0.2.11", "connect|192.0.2.11||"},
		{"auth", "vm-pop3d", "User 'dave' logged in", "auth|-|dave|"},
		{"auth virtual", "vm-pop3d", "User 'erin' of 'example.org' logged in", "auth|-|erin@example.org|"},
		{"auth unquoted", "vm-pop3d", "User frank logged in", "auth|-|frank|"},

		{"failed auth", "vm-pop3d", "User 'mallory' - failed auth, from=203.0.113.66", "fail|-||"},
		{"connection opened", "vm-pop3d", "Connection opened", "fail|-||"},
		{"incoming opened", "vm-pop3d", "Incoming connection opened", "fail|-||"},
		{"session ended", "vm-pop3d", "Session ended for user: 'a@example.org' from 192.0.2.10, nmsgs=3, ndel=0", "logout|192.0.2.10|a@example.org|"},
		{"session ended bad addr", "vm-pop3d", "Session ended for user: 'a' from 0.0.0.0, nmsgs=3, ndel=0", "logout|-|a|"},
		{"session ended no addr", "vm-pop3d", "Session ended for user: a", "logout|-|a|"},

		{"connect hostname", "vm-pop3d", "Connect from client.example.net", "refused"},
		{"connect trailing", "vm-pop3d", "Connect from 192.0.2.1 x", "refused"},
		{"inject", "vm-pop3d", "User 'x' logged in from 203.0.113.66' logged in from 192.0.2.1", "refused"},
		{"no addr", "vm-pop3d", "User 'x' logged in from ", "refused"},
		{"broadcast", "vm-pop3d", "User 'x' logged in from 255.255.255.255, nmsgs=1", "refused"},

		{"empty quotes", "vm-pop3d", "User '' logged in from 192.0.2.1", "nomatch"},
		{"open quote", "vm-pop3d", "User 'x logged in from 192.0.2.1", "nomatch"},
		{"close quote only", "vm-pop3d", "User x' logged in", "nomatch"},
		{"virtual unquoted domain", "vm-pop3d", "User 'x' of example.org logged in", "nomatch"},
		{"virtual unquoted user", "vm-pop3d", "User x of 'example.org' logged in", "nomatch"},
		{"logged out", "vm-pop3d", "User 'x' logged out from 192.0.2.1", "nomatch"},
		{"lower case", "vm-pop3d", "user 'x' logged in from 192.0.2.1", "nomatch"},
		{"connect lower", "vm-pop3d", "connect from 192.0.2.1", "nomatch"},
		{"user only", "vm-pop3d", "User 'x'", "nomatch"},
		{"bytes", "vm-pop3d", "bytes: domain example.org 491 bytes", "nomatch"},
		{"apop", "vm-pop3d", "APOP user x tried to log in with USER", "nomatch"},
	})
}
