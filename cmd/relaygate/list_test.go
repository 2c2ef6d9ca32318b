package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/relaygate/relaygate/internal/grants"
)

// Every text cell of list (and status) is text a sender chose: it is cut
// to maxCell characters and nothing in it reaches the terminal raw.
func TestDashEscapesAndCuts(t *testing.T) {
	long := strings.Repeat("a", 3000)
	tests := []struct{ in, want string }{
		{"", "-"},
		{"bob@example.org", "bob@example.org"},
		{"DOMAIN\\user", "DOMAIN\\user"},
		{"jürgen", "jürgen"},
		{long, strings.Repeat("a", maxCell-1) + "…"},
		{strings.Repeat("a", maxCell), strings.Repeat("a", maxCell)},
		{strings.Repeat("a", maxCell+1), strings.Repeat("a", maxCell-1) + "…"},
		// Cut at a character boundary, never inside a UTF-8 sequence.
		{strings.Repeat("é", 100), strings.Repeat("é", maxCell-1) + "…"},
		// Terminal controls: clear screen, retitle, cursor up, bell.
		{"a\x1b[2Jb", `a\x1b[2Jb`},
		{"\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
		{"x\x1b[1A\x1b[2Kroot", `x\x1b[1A\x1b[2Kroot`},
		// Row and column breaks.
		{"a\tb\nc\rd", `a\x09b\x0ac\x0dd`},
		{"\x00\x7f", `\x00\x7f`},
		// C1 controls (U+009B is CSI), as characters and as raw bytes.
		{"a\u009b2Jb", `a\u009b2Jb`},
		{"a\x9b2J\xffb", `a\x9b2J\xffb`},
		// Bidi override and zero-width characters that hide or reorder text.
		{"evil\u202etxt.exe", `evil\u202etxt.exe`},
		{"a\u200bb\ufeff", `a\u200bb\ufeff`},
		{"\U000e0041", `\U000e0041`},
		// An escape is never split by the cut.
		{strings.Repeat("a", maxCell-3) + "\x1b", strings.Repeat("a", maxCell-3) + "…"},
	}
	for _, tc := range tests {
		got := dash(tc.in)
		if got != tc.want {
			t.Errorf("dash(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if n := utf8.RuneCountInString(got); n > maxCell {
			t.Errorf("dash(%q) is %d characters wide", tc.in, n)
		}
		checkTerminalSafe(t, got)
	}
}

func TestListTableBounded(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	grants := map[string]grants.Grant{
		"192.0.2.1": {Addr: netip.MustParseAddr("192.0.2.1"), Expires: now.Add(time.Hour), User: strings.Repeat("u", 3000) + "@example.org", Daemon: "dovecot", Host: "mx1"},
		"192.0.2.2": {Addr: netip.MustParseAddr("192.0.2.2"), Expires: now.Add(time.Hour), User: "bob\x1b[2J\x1b[H", Daemon: "rule\u009b", Host: "mx\x1b]0;owned\x07" + strings.Repeat("h", 500)},
	}
	var out bytes.Buffer
	if err := writeList(&out, []string{"192.0.2.2", "192.0.2.1", "198.51.100.1"}, grants, now); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want a header and 3 rows", len(lines))
	}
	for _, l := range lines {
		// Address, expiry, time left, and three cut columns with padding.
		if n := utf8.RuneCountInString(l); n > 160 {
			t.Errorf("row %d characters wide: %.80q…", n, l)
		}
		checkTerminalSafe(t, l)
	}
	if !strings.Contains(out.String(), `bob\x1b[2J\x1b[H`) || !strings.Contains(out.String(), "uuu…") {
		t.Errorf("user names not shown escaped and cut:\n%s", out.String())
	}
}

// checkTerminalSafe fails on anything a terminal would act on: invalid
// UTF-8 (a lone 0x9B byte is CSI to some), control and format characters.
func checkTerminalSafe(t *testing.T, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Errorf("%q is not valid UTF-8", s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			t.Errorf("%q holds %U raw", s, r)
		}
	}
}
