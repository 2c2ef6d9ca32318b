package parsers

import (
	"testing"
)

func TestPopa3d(t *testing.T) {
	runCases(t, popa3d{}, []parseCase{
		{"session", "popa3d", "Session from 192.0.2.10", "connect|192.0.2.10||"},
		{"session v6", "popa3d", "Session from 2001:DB8::25", "connect|2001:db8::25||"},
		{"session mapped", "popa3d", "Session from ::ffff:192.0.2.11", "connect|192.0.2.11||"},
		{"passed", "popa3d", "Authentication passed for alice", "auth|-|alice|"},
		{"passed virtual", "popa3d", "Authentication passed for alice@example.org", "auth|-|alice@example.org|"},
		{"patched", "popa3d", "Authentication passed for alice -- [192.0.2.12]", "login|192.0.2.12|alice|"},
		{"patched v6", "popa3d", "Authentication passed for bob -- [2001:db8::1]", "login|2001:db8::1|bob|"},

		{"failed", "popa3d", "Authentication failed for mallory", "fail|-||"},
		{"failed unknown", "popa3d", "Authentication failed for UNKNOWN USER", "fail|-||"},
		{"failed patched", "popa3d", "Authentication failed for mallory -- [203.0.113.66]", "fail|-||"},
		{"no attempt", "popa3d", "Didn't attempt authentication", "fail|-||"},
		{"sessions limit", "popa3d", "192.0.2.66: sessions limit reached", "fail|-||"},
		{"per source limit", "popa3d", "203.0.113.66: per source limit reached", "fail|-||"},

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
