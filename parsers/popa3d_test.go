package parsers

import (
	"errors"
	"strings"
	"testing"
)

// kindOutcome renders any parse result for the two-line daemons' table
// tests: "kind|addr|user" ("-" for no address), "nomatch" or "refused".
func kindOutcome(t *testing.T, ev Event, err error) string {
	t.Helper()
	if err != nil {
		var ae *AddrError
		switch {
		case errors.Is(err, ErrNoMatch):
			return "nomatch"
		case errors.As(err, &ae):
			return "refused"
		}
		t.Fatalf("unexpected error type %T: %v", err, err)
	}
	addr := "-"
	if ev.Addr.IsValid() {
		addr = ev.Addr.String()
	}
	return strings.Join([]string{ev.Kind.String(), addr, ev.User}, "|")
}

// runKindCases runs table cases against p alone and checks the event
// invariants of every kind.
func runKindCases(t *testing.T, p Parser, cases []parseCase) {
	t.Helper()
	progs := map[string]bool{}
	for _, prog := range p.Programs() {
		progs[prog] = true
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			if !progs[tt.program] {
				t.Fatalf("%s does not handle program %q", p.Name(), tt.program)
			}
			ev, err := p.Parse(Message{Host: "mx1", Program: tt.program, PID: "1", Text: tt.text})
			if got := kindOutcome(t, ev, err); got != tt.want {
				t.Errorf("%s.Parse(%q, %q) = %q, want %q", p.Name(), tt.program, tt.text, got, tt.want)
			}
			if err != nil {
				if ev != (Event{}) {
					t.Errorf("error %v with event %+v", err, ev)
				}
				return
			}
			if ev.Daemon != p.Name() {
				t.Errorf("Daemon %q, want %q", ev.Daemon, p.Name())
			}
			switch ev.Kind {
			case Login, Connect:
				if !ev.Addr.IsValid() {
					t.Errorf("%v event without an address", ev.Kind)
				}
			case Auth, Fail:
				if ev.Addr.IsValid() {
					t.Errorf("%v event with an address", ev.Kind)
				}
			}
		})
	}
}

func TestPopa3d(t *testing.T) {
	runKindCases(t, Popa3d{}, []parseCase{
		{"session", "popa3d", "Session from 192.0.2.10", "connect|192.0.2.10|"},
		{"session v6", "popa3d", "Session from 2001:DB8::25", "connect|2001:db8::25|"},
		{"session mapped", "popa3d", "Session from ::ffff:192.0.2.11", "connect|192.0.2.11|"},
		{"passed", "popa3d", "Authentication passed for alice", "auth|-|alice"},
		{"passed virtual", "popa3d", "Authentication passed for alice@example.org", "auth|-|alice@example.org"},
		{"patched", "popa3d", "Authentication passed for alice -- [192.0.2.12]", "login|192.0.2.12|alice"},
		{"patched v6", "popa3d", "Authentication passed for bob -- [2001:db8::1]", "login|2001:db8::1|bob"},

		{"failed", "popa3d", "Authentication failed for mallory", "fail|-|"},
		{"failed unknown", "popa3d", "Authentication failed for UNKNOWN USER", "fail|-|"},
		{"failed patched", "popa3d", "Authentication failed for mallory -- [203.0.113.66]", "fail|-|"},
		{"no attempt", "popa3d", "Didn't attempt authentication", "fail|-|"},
		{"sessions limit", "popa3d", "192.0.2.66: sessions limit reached", "fail|-|"},
		{"per source limit", "popa3d", "203.0.113.66: per source limit reached", "fail|-|"},

		{"session hostname", "popa3d", "Session from client.example.net", "refused"},
		{"session zone", "popa3d", "Session from fe80::1%eth0", "refused"},
		{"session trailing", "popa3d", "Session from 192.0.2.1 x", "refused"},
		{"session empty", "popa3d", "Session from ", "refused"},
		{"patched twice", "popa3d", "Authentication passed for x -- [203.0.113.66] -- [192.0.2.1]", "refused"},
		{"patched unbracketed", "popa3d", "Authentication passed for x -- 192.0.2.1", "refused"},
		{"patched unspecified", "popa3d", "Authentication passed for x -- [0.0.0.0]", "refused"},
		{"two words", "popa3d", "Authentication passed for x y", "refused"},

		{"no user", "popa3d", "Authentication passed for ", "nomatch"},
		{"no user patched", "popa3d", "Authentication passed for  -- [192.0.2.1]", "nomatch"},
		{"lower case", "popa3d", "authentication passed for x", "nomatch"},
		{"session lower", "popa3d", "session from 192.0.2.1", "nomatch"},
		{"fork", "popa3d", "192.0.2.1: fork: Resource temporarily unavailable", "nomatch"},
		{"empty", "popa3d", "", "nomatch"},
	})
}
