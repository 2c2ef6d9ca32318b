package parsers

import (
	"errors"
	"testing"
)

func TestGNUPop3d(t *testing.T) {
	runCases(t, gnuPop3d{}, []parseCase{
		{"1.x", "pop3d", "User 'alice' logged in with mailbox '/var/mail/alice' (2 msgs)", "auth|-|alice|"},
		{"no count", "pop3d", "User 'alice' logged in with mailbox '/var/mail/alice'", "auth|-|alice|"},
		{"backquotes", "gnu-pop3d", "User `dave' logged in with mailbox `/var/mail/dave'", "auth|-|dave|"},
		{"2.x", "gnu-pop3d", "user `bob' logged in with mailbox `mbox:/var/mail/bob' (1 message)", "auth|-|bob|"},
		{"3.x", "gnu-pop3d", "user `bob' logged in with mailbox `mbox:/var/mail/bob' (12 messages)", "auth|-|bob|"},
		{"unquoted", "pop3d", "User erin logged in with mailbox /var/mail/erin", "auth|-|erin|"},
		{"null mailbox", "pop3d", "User erin logged in with mailbox (null)", "auth|-|erin|"},
		{"from", "gnu-pop3d", "User 'frank' logged in with mailbox '/var/mail/frank' from 203.0.113.13", "login|203.0.113.13|frank|"},
		{"connect", "pop3d", "connect from 192.0.2.10", "connect|192.0.2.10||"},
		{"Connect", "gnu-pop3d", "Connect from 192.0.2.10", "connect|192.0.2.10||"},

		{"incoming", "pop3d", "Incoming connection opened", "fail|-||"},
		{"incoming 2.x", "gnu-pop3d", "incoming connection opened", "fail|-||"},
		{"auth failed", "gnu-pop3d", "user `mallory': authentication failed", "fail|-||"},
		{"auth failed old", "pop3d", "User 'mallory': authentication failed", "fail|-||"},
		{"nonexistent", "gnu-pop3d", "user `ghost' nonexistent", "fail|-||"},
		{"probe", "pop3d", "Possible probe of account 'x'", "fail|-||"},
		{"probe 3.x", "gnu-pop3d", "possible probe of account `x'", "fail|-||"},
		{"login delay", "gnu-pop3d", "user `x' tried to log in within the minimum allowed delay", "fail|-||"},
		{"apop with user", "gnu-pop3d", "APOP user x tried to log in with USER", "fail|-||"},
		{"blocked", "pop3d", "Access from 203.0.113.66 blocked.", "fail|-||"},
		{"unknown address", "pop3d", "Rejecting connection from unknown address", "fail|-||"},
		{"session ended", "gnu-pop3d", "session ended for user: bob", "fail|-||"},
		{"session ended old", "pop3d", "Session ended for user: bob", "fail|-||"},
		{"session ended no user", "gnu-pop3d", "session ended for no user", "fail|-||"},

		{"connect hostname", "pop3d", "connect from client.example.net", "refused"},
		{"connect trailing", "pop3d", "connect from 192.0.2.1 x", "refused"},
		{"from multicast", "gnu-pop3d", "User 'x' logged in with mailbox '/var/mail/x' from 224.0.0.5", "refused"},
		{"from name", "gnu-pop3d", "User 'x' logged in with mailbox '/var/mail/x' from unknown", "refused"},

		{"from with more words", "gnu-pop3d", "User 'x' logged in with mailbox 'y' from 192.0.2.1 z", "auth|-|x|"},
		{"no mailbox", "gnu-pop3d", "User 'x' logged in with mailbox ", "nomatch"},
		{"imap4d", "gnu-pop3d", "User `x' logged in (source: system)", "nomatch"},
		{"pop3 login", "gnu-pop3d", "POP3 login: user `ivan', source system", "nomatch"},
		{"odd quotes", "gnu-pop3d", "User 'x logged in with mailbox 'y'", "nomatch"},
		{"bare with quote", "gnu-pop3d", "User x' logged in with mailbox 'y'", "nomatch"},
		{"empty quotes", "gnu-pop3d", "User '' logged in with mailbox 'y'", "nomatch"},
		{"no rest", "gnu-pop3d", "User x", "nomatch"},
		{"upper CONNECT", "pop3d", "CONNECT from 192.0.2.1", "nomatch"},
		{"debug", "gnu-pop3d", "Started in debugging mode", "nomatch"},
		{"cannot obtain", "gnu-pop3d", "Cannot obtain IP address of client: Transport endpoint is not connected", "nomatch"},
		{"empty", "pop3d", "", "nomatch"},
	})
}

// Courier, Cyrus and GNU pop3d share the pop3d tag: each must leave the
// others' lines alone, and the Set must give each line to its owner.
func TestPop3dTagShared(t *testing.T) {
	set := NewSet(builtin()...)
	cases := []struct{ text, daemon string }{
		{"LOGIN, user=alice, ip=[::ffff:192.0.2.10], port=[51871]", "courier"},
		{"login: [192.0.2.11] bob plaintext User logged in", "cyrus"},
		{"connect from 192.0.2.12", "gnu-pop3d"},
		{"User 'carol' logged in with mailbox '/var/mail/carol'", "gnu-pop3d"},
		{"user `carol': authentication failed", "gnu-pop3d"},
		{"LOGIN FAILED, user=mallory, ip=[::ffff:203.0.113.66], port=[1]", ""},
		{"Connection, ip=[::ffff:203.0.113.66], port=[1]", ""},
		{"badlogin: [203.0.113.66] plaintext mallory SASL(-13): authentication failure: checkpass failed", ""},
	}
	for _, tt := range cases {
		m := Message{Host: "mx1", Program: "pop3d", PID: "1", Text: tt.text}
		ev, err := set.parse(m)
		if tt.daemon == "" {
			if !errors.Is(err, ErrNoMatch) {
				t.Errorf("%q: got %+v, %v; want no match", tt.text, ev, err)
			}
		} else if err != nil || ev.Daemon != tt.daemon {
			t.Errorf("%q: got %+v, %v; want an event of %s", tt.text, ev, err, tt.daemon)
		}
		for _, p := range []Parser{courier{}, cyrus{}, gnuPop3d{}} {
			if p.Name() == tt.daemon {
				continue
			}
			if ev, err := p.Parse(m); !errors.Is(err, ErrNoMatch) {
				t.Errorf("%s.Parse(%q) = %+v, %v; want ErrNoMatch", p.Name(), tt.text, ev, err)
			}
		}
	}
}
