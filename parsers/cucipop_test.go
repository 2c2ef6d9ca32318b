package parsers

import "testing"

func TestCucipop(t *testing.T) {
	runCases(t, cucipop{}, []parseCase{
		{"v4", "cucipop", "alice 192.0.2.10 3, 0 (0), 2 (4096)", "login|192.0.2.10|alice|"},
		{"v6", "cucipop", "alice 2001:db8::1 3, 0 (0), 2 (4096)", "login|2001:db8::1|alice|"},

		{"six words", "cucipop", "alice 192.0.2.10 3, 0 (0), 2", "nomatch"},
		{"missing comma", "cucipop", "alice 192.0.2.10 3 0 (0), 2 (4096)", "nomatch"},
		{"missing paren", "cucipop", "alice 192.0.2.10 3, 0 0), 2 (4096)", "nomatch"},
		{"empty number", "cucipop", "alice 192.0.2.10 3, 0 (), 2 (4096)", "nomatch"},
		{"empty user", "cucipop", " 192.0.2.10 3, 0 (0), 2 (4096)", "nomatch"},
		{"host not address", "cucipop", "alice client.example.net 3, 0 (0), 2 (4096)", "refused"},
	})
}
