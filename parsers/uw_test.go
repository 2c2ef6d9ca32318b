package parsers

import "testing"

func TestUW(t *testing.T) {
	runCases(t, uw{}, []parseCase{
		{"login nmsgs", "ipop3d", "Login user=alice host=client.example.net [192.0.2.10] nmsgs=0/0", "login|192.0.2.10|alice|"},
		{"authenticated", "imapd", "Authenticated user=bob host=[198.51.100.7]", "login|198.51.100.7|bob|"},
		{"auth", "ipop3d", "Auth user=c host=[203.0.113.31] nmsgs=5/0", "login|203.0.113.31|c|"},
		{"apop", "ipop3d", "APOP user=d host=h.example [192.0.2.32] nmsgs=2/1", "login|192.0.2.32|d|"},
		{"mapped", "imapd", "Login user=e host=[::ffff:192.0.2.20]", "login|192.0.2.20|e|"},
		{"v6", "imaps", "Login user=f host=h.example [2001:DB8::30]", "login|2001:db8::30|f|"},
		{"glued host", "imapd", "Login user=g host=h.example[192.0.2.33]", "login|192.0.2.33|g|"},
		{"user with space", "imapd", "Login user=a b host=[192.0.2.34]", "login|192.0.2.34|a b|"},

		{"name only", "ipop3d", "Login user=a host=YahooBB218.bbtec.net nmsgs=0/0", "refused"},
		{"unknown", "imapd", "Login user=a host=UNKNOWN", "refused"},
		{"truncated", "imapd", "Login user=a host=very.long.name [192.0.2.1", "refused"},
		{"inject", "imapd", "Login user=x host=[203.0.113.66] host=[192.0.2.40]", "refused"},
		{"inject nmsgs", "ipop3d", "Login user=x host=[203.0.113.66] nmsgs=0/0 host=[192.0.2.41] nmsgs=0/0", "refused"},
		{"bad address", "imapd", "Login user=a host=[999.1.1.1]", "refused"},

		{"two addresses", "imapd", "Login user=x host=[192.0.2.42] [203.0.113.66]", "nomatch"},
		{"bad nmsgs", "ipop3d", "Login user=a host=[192.0.2.1] nmsgs=1", "nomatch"},
		{"failed", "imapd", "Login failed user=a auth=a host=h [192.0.2.1]", "nomatch"},
		{"failure", "ipop3d", "Login failure user=a host=h [192.0.2.1]", "nomatch"},
		{"excessive", "imapd", "Login excessive login failures user=a auth=a host=[192.0.2.1]", "nomatch"},
		{"disabled", "imapd", "Login disabled user=a auth=a host=[192.0.2.1]", "nomatch"},
		{"logout without pid", "imapd", "Logout user=a host=[192.0.2.1]", "nomatch"},
		{"autologout without pid", "imapd", "Autologout user=a host=[192.0.2.1]", "nomatch"},
		{"preauth", "imapd", "Preauthenticated user=a host=UNKNOWN", "nomatch"},
		{"preauth with ip", "imapd", "Preauthenticated user=a host=[192.0.2.1]", "nomatch"},
		{"authenticate failure", "imapd", "AUTHENTICATE PLAIN failure host=[192.0.2.1]", "nomatch"},
		{"killed", "imapd", "Killed (lost mailbox lock) user=a host=[192.0.2.1]", "nomatch"},
		{"proxy", "imapd", "IMAP login to host=r.example user=a host=[192.0.2.1]", "nomatch"},
		{"anonymous", "imapd", "Login anonymous=guest host=[192.0.2.1]", "nomatch"},
		{"no host", "imapd", "Login user=a", "nomatch"},
		{"empty user", "imapd", "Login user= host=[192.0.2.1]", "nomatch"},
	})
}

// UW's session is its process: host, program and PID.
func TestUWSessionEnds(t *testing.T) {
	p := uw{}
	for _, tt := range []struct{ text, want string }{
		{"Logout user=alice host=client.example.net [192.0.2.10]", "logout|-|alice|mx1/imapd[77]"},
		{"Autologout user=alice host=[192.0.2.10]", "logout|-|alice|mx1/imapd[77]"},
		{"Killed (lost mailbox lock) user=alice host=[192.0.2.10]", "logout|-|alice|mx1/imapd[77]"},
		{"Login user=alice host=[192.0.2.10]", "login|192.0.2.10|alice|mx1/imapd[77]"},
	} {
		ev, err := p.Parse(Message{Host: "mx1", Program: "imapd", PID: "77", Text: tt.text})
		if got := outcome(t, ev, err); got != tt.want {
			t.Errorf("uw.Parse(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}
