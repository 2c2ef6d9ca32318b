package parsers

import (
	"strings"
	"testing"
)

// A user name (auth_username_chars empty) may spell a whole mail-process
// prefix with another session's id: that must not end the other session.
func TestDovecotSessionEndUserInjection(t *testing.T) {
	runCases(t, Dovecot{}, []parseCase{
		{"forged prefix in the user name", "dovecot", "imap(x)<1><VICTIMSESS>: Disconnected: y)<4711><ownsess>: Disconnected: Logged out in=1 out=2", "nomatch"},
		{"message holding a prefix", "dovecot", "imap(bob)<4711><ownsess>: Disconnected: x)<1><ownsess>: Logged out", "logout|-|bob|ownsess"},
		{"many splits", "dovecot", "imap(a)<1><s>: Disconnected" + strings.Repeat(">: ", 40), "nomatch"},
	})
}
