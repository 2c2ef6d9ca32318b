package parsers

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite testdata/parsers/*.golden from the parsers' output")

// goldenField keeps a field on one tab-separated line: text with control
// characters, invalid UTF-8 or a leading quote is written Go-quoted.
func goldenField(s string) string {
	if !utf8.ValidString(s) || strings.HasPrefix(s, `"`) ||
		strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return strconv.Quote(s)
	}
	return s
}

// grantsLogin reports whether r puts an address into the grant table.
func grantsLogin(r Result) bool { return r.Outcome == Accepted && r.Event.Kind == Login }

// runPipeline feeds a fixture's lines in order through a fresh Pipeline over
// set, the step the daemon and `relaygate parse` run.
func runPipeline(set *Set, lines []fixtureLine) []Result {
	p := NewPipeline(set, NewCorrelator(fixtureCap, fixtureMaxAge))
	out := make([]Result, len(lines))
	for i, fl := range lines {
		out[i] = p.Step(fl.Msg, fixtureEpoch.Add(time.Duration(fl.N)*time.Second))
	}
	return out
}

// goldenResult renders one pipeline result as
// "N\tlogin\taddr\tuser\tdaemon[\tsession]",
// "N\tlogout\taddr-or--\tuser\tdaemon\tsession", "N\tpending\t<note>" (an
// event the Correlator consumed), "N\tnomatch" or "N\trefused\t<error text>".
func goldenResult(n int, r Result) string {
	switch r.Outcome {
	case Unmatched:
		return fmt.Sprintf("%d\tnomatch", n)
	case Refused:
		return fmt.Sprintf("%d\trefused\t%s", n, goldenField(r.Err.Error()))
	case Held:
		return fmt.Sprintf("%d\tpending\t%s", n, goldenField(r.Note))
	}
	ev := r.Event
	if ev.Kind == Logout {
		addr := "-"
		if ev.Addr.IsValid() {
			addr = ev.Addr.String()
		}
		return fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t%s", n, ev.Kind, addr, goldenField(ev.User),
			ev.Daemon, goldenField(ev.Session))
	}
	s := fmt.Sprintf("%d\t%s\t%s\t%s\t%s", n, ev.Kind, ev.Addr, goldenField(ev.User), ev.Daemon)
	if ev.Session != "" {
		s += "\t" + goldenField(ev.Session)
	}
	return s
}

func TestGolden(t *testing.T) {
	set := NewSet(builtin()...)
	for _, path := range fixtures(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".log")
		t.Run(name, func(t *testing.T) {
			var b strings.Builder
			lines := readFixture(t, path)
			for i, r := range runPipeline(set, lines) {
				b.WriteString(goldenResult(lines[i].N, r))
				b.WriteByte('\n')
			}
			got := b.String()
			golden := strings.TrimSuffix(path, ".log") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./parsers -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the parsers' output (review, then go test ./parsers -update):\n%s",
					golden, lineDiff(string(want), got))
			}
		})
	}
}

// lineDiff lists the lines that differ between two goldens.
func lineDiff(want, got string) string {
	w := strings.Split(want, "\n")
	g := strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "-%s\n+%s\n", wl, gl)
		}
	}
	return b.String()
}

// failureWords never appear in a line that may grant: each marks a failed,
// refused or anonymous login in one of the daemons.
var failureWords = []string{"failed", "FAILED", "badlogin", "Aborted", "aborted", "anonymous"}

// TestFixtureExpectations checks the fixtures against their own section
// markers, independently of the goldens, so that an -update can't quietly
// bless a grant on a line written as a must-not-grant example. Lines run
// through the same Set + Correlator pipeline as the goldens: for a two-line
// daemon the line that grants is the success (Auth) line, so it goes under
// "# grant", and its address line under "# no-grant" (it must not grant by
// itself).
func TestFixtureExpectations(t *testing.T) {
	set := NewSet(builtin()...)
	for _, path := range fixtures(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".log")
		t.Run(name, func(t *testing.T) {
			var grants, refusals int
			lines := readFixture(t, path)
			for i, r := range runPipeline(set, lines) {
				fl := lines[i]
				granted := grantsLogin(r)
				if granted {
					grants++
				} else {
					refusals++
				}
				where := fmt.Sprintf("%s:%d", filepath.Base(path), fl.N)
				switch fl.Expect {
				case "grant":
					if !granted {
						t.Errorf("%s: must grant, got %v %v %+v %q: %s", where, r.Outcome, r.Err, r.Event, r.Note, fl.Raw)
					} else if r.Event.Daemon != name {
						t.Errorf("%s: granted by %q, want %q: %s", where, r.Event.Daemon, name, fl.Raw)
					}
				case "no-grant":
					if granted {
						t.Errorf("%s: must not grant, got %+v: %s", where, r.Event, fl.Raw)
					}
				default:
					t.Errorf("%s: line before any # grant / # no-grant marker", where)
				}
				if granted {
					for _, w := range failureWords {
						if strings.Contains(fl.Raw, w) {
							t.Errorf("%s: line containing %q grants: %s", where, w, fl.Raw)
						}
					}
				}
				if name == "noise" && r.Outcome != Unmatched {
					t.Errorf("%s: noise must not match at all, got %v", where, r.Err)
				}
			}
			if name == "noise" {
				if grants != 0 {
					t.Errorf("noise.log: %d grants", grants)
				}
				return
			}
			if grants < 5 {
				t.Errorf("%s: only %d success lines, want at least 5", filepath.Base(path), grants)
			}
			if refusals < 8 {
				t.Errorf("%s: only %d must-not-grant lines, want at least 8", filepath.Base(path), refusals)
			}
			t.Logf("%s: %d grant, %d no-grant", filepath.Base(path), grants, refusals)
		})
	}
}

func TestSplitLogLine(t *testing.T) {
	tests := []struct {
		in   string
		want Message
		ok   bool
	}{
		{"Dec  1 10:04:13 mx1 ipop3d[21869]: Login user=a", Message{Host: "mx1", Program: "ipop3d", PID: "21869", Text: "Login user=a"}, true},
		{"Nov 21 15:53:29 mail dovecot: pop3-login: x", Message{Host: "mail", Program: "dovecot", Text: "pop3-login: x"}, true},
		{"Feb 3 01:02:03 h Cyrus/IMAP[1]: login: x", Message{Host: "h", Program: "cyrus/imap", PID: "1", Text: "login: x"}, true},
		{"Nov 21 15:53:29 mail no colon here", Message{}, false},
		{"Nov 21 15:53 mail dovecot: x", Message{}, false},
		{"2026-03-03T10:15:02Z mx1 dovecot: x", Message{}, false},
	}
	for _, tt := range tests {
		got, ok := splitLogLine(tt.in)
		if ok != tt.ok || got != tt.want {
			t.Errorf("splitLogLine(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
