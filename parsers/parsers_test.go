package parsers

import (
	"errors"
	"strings"
	"testing"
)

func TestSetSharedTags(t *testing.T) {
	set := NewSet(builtin()...)
	tests := []struct{ program, text, daemon string }{
		{"imapd", "LOGIN, user=a, ip=[::ffff:192.0.2.1], port=[1], protocol=IMAP", "courier"},
		{"imapd", "Login user=a host=[192.0.2.1]", "uw"},
		{"imapd", "login: [192.0.2.1] a plaintext User logged in", "cyrus"},
		{"IMAPD", "login: [192.0.2.1] a plaintext User logged in", "cyrus"},
		{"pop3d", "LOGIN, user=a, ip=[::ffff:192.0.2.1]", "courier"},
		{"pop3d", "login: [192.0.2.1] a plaintext User logged in", "cyrus"},
		{"pop3s", "Login user=a host=[192.0.2.1] nmsgs=0/0", "uw"},
		{"pop3s", "login: [192.0.2.1] a plaintext User logged in", "cyrus"},
	}
	for _, tt := range tests {
		ev, err := set.parse(Message{Program: tt.program, Text: tt.text})
		if err != nil || ev.Daemon != tt.daemon {
			t.Errorf("Set.parse(%q, %q) = %+v, %v; want daemon %q", tt.program, tt.text, ev, err, tt.daemon)
		}
	}
	// An AddrError from one parser is reported only when no other matched.
	_, err := set.parse(Message{Program: "imapd", Text: "Login user=a host=UNKNOWN"})
	var ae *AddrError
	if !errors.As(err, &ae) {
		t.Errorf("Set.parse(UW host=UNKNOWN) = %v, want *AddrError", err)
	}
}

func TestBuiltinProgramsLowerCase(t *testing.T) {
	names := map[string]bool{}
	for _, p := range builtin() {
		if names[p.Name()] {
			t.Errorf("duplicate parser name %q", p.Name())
		}
		names[p.Name()] = true
		for _, prog := range p.Programs() {
			if prog != strings.ToLower(prog) || prog == "" {
				t.Errorf("%s: program %q must be non-empty lower case", p.Name(), prog)
			}
		}
	}
}

func TestParseAddr(t *testing.T) {
	tests := []struct {
		in, want string // want "" means refused
	}{
		{"192.0.2.1", "192.0.2.1"},
		{"[192.0.2.1]", "192.0.2.1"},
		{"2001:DB8::5", "2001:db8::5"},
		{"[2001:db8:0:0:0:0:0:5]", "2001:db8::5"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"[::ffff:192.0.2.1]", "192.0.2.1"},
		{"127.0.0.1", "127.0.0.1"},
		{"::1", "::1"},
		{"10.0.0.1", "10.0.0.1"},
		{"fd00:1:2:3::1", "fd00:1:2:3::1"},
		{"fe80::1%eth0", ""},
		{"[fe80::1%eth0]", ""},
		{"192.0.2.1%eth0", ""},
		{"fe80::1", ""},
		{"169.254.1.1", ""},
		{"0.0.0.0", ""},
		{"::", ""},
		{"::ffff:0.0.0.0", ""},
		{"0.1.2.3", ""},
		{"224.0.0.1", ""},
		{"ff02::1", ""},
		{"255.255.255.255", ""},
		{"::ffff:255.255.255.255", ""},
		{"240.0.0.1", ""},
		{"999.1.1.1", ""},
		{"01.2.3.4", ""},
		{"192.0.2", ""},
		{"[192.0.2.1", ""},
		{"192.0.2.1]", ""},
		{"[[192.0.2.1]]", ""},
		{"", ""},
		{"[]", ""},
		{"unknown", ""},
		{" 192.0.2.1", ""},
	}
	for _, tt := range tests {
		a, err := parseAddr(tt.in)
		if tt.want == "" {
			var ae *AddrError
			if !errors.As(err, &ae) {
				t.Errorf("parseAddr(%q) = %v, %v; want *AddrError", tt.in, a, err)
			}
			continue
		}
		if err != nil || a.String() != tt.want || a.Is4In6() {
			t.Errorf("parseAddr(%q) = %v, %v; want %s", tt.in, a, err, tt.want)
		}
	}
}

func TestAddrErrorText(t *testing.T) {
	_, err := parseAddr("fe80::1%eth0")
	if got, want := err.Error(), `address "fe80::1%eth0": has an IPv6 zone`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e := &AddrError{Addr: "a\tb\"" + strings.Repeat("x", 100), Reason: "r"}
	if got := e.Error(); strings.ContainsAny(got, "\t\n") || !strings.HasSuffix(got, ": r") {
		t.Errorf("Error() = %q: want control characters escaped and the address shortened", got)
	}
}
