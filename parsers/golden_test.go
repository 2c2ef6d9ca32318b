package parsers

import (
	"bufio"
	"errors"
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

// fixtureDir holds one <daemon>.log per parser plus noise.log. A fixture is
// a syslog file as written by rsyslog's traditional file format. "#" lines
// are comments, except the section markers "# grant" and "# no-grant",
// which state what every following line must do.
const fixtureDir = "../testdata/parsers"

type fixtureLine struct {
	N      int // 1-based line number in the .log file
	Raw    string
	Msg    Message
	Expect string // "grant", "no-grant" or "" before any marker
}

func readFixture(t testing.TB, path string) []fixtureLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out    []fixtureLine
		expect string
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case line == "# grant":
			expect = "grant"
			continue
		case line == "# no-grant":
			expect = "no-grant"
			continue
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		}
		m, ok := splitLogLine(line)
		if !ok {
			t.Errorf("%s:%d: not a log-file line: %q", path, n, line)
			continue
		}
		out = append(out, fixtureLine{N: n, Raw: line, Msg: m, Expect: expect})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func fixtures(t testing.TB) []string {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(fixtureDir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) == 0 {
		t.Fatalf("no fixtures in %s", fixtureDir)
	}
	return logs
}

// splitLogLine splits an RFC 3164 log-file line,
// "Mmm dd hh:mm:ss host tag[pid]: text", the way the receiver's envelope
// parser would, and lower-cases the program as the receiver does.
func splitLogLine(line string) (Message, bool) {
	if len(line) < 4 || line[3] != ' ' {
		return Message{}, false
	}
	for i := 0; i < 3; i++ {
		if c := line[i]; (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			return Message{}, false
		}
	}
	rest := strings.TrimLeft(line[4:], " ") // day may be space-padded
	day, rest, ok := strings.Cut(rest, " ")
	if !ok || len(day) < 1 || len(day) > 2 || !allDigits(day) {
		return Message{}, false
	}
	clock, rest, ok := strings.Cut(rest, " ")
	if !ok || len(clock) != 8 || clock[2] != ':' || clock[5] != ':' {
		return Message{}, false
	}
	host, rest, ok := strings.Cut(rest, " ")
	if !ok || host == "" {
		return Message{}, false
	}
	tag, text, ok := strings.Cut(rest, ":")
	if !ok || tag == "" || strings.ContainsAny(tag, " \t") {
		return Message{}, false
	}
	var pid string
	if open := strings.IndexByte(tag, '['); open >= 0 {
		if !strings.HasSuffix(tag, "]") || open == 0 {
			return Message{}, false
		}
		tag, pid = tag[:open], tag[open+1:len(tag)-1]
	}
	return Message{
		Host:    host,
		Program: strings.ToLower(tag),
		PID:     pid,
		Text:    strings.TrimPrefix(text, " "),
	}, true
}

// goldenField keeps a field on one tab-separated line: text with control
// characters, invalid UTF-8 or a leading quote is written Go-quoted.
func goldenField(s string) string {
	if !utf8.ValidString(s) || strings.HasPrefix(s, `"`) ||
		strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return strconv.Quote(s)
	}
	return s
}

// Fixture pipeline settings: every fixture file runs through a fresh
// Correlator, with a clock that starts at fixtureEpoch and advances one
// second per line, so a fixture never comes near the age limit.
const (
	fixtureCap    = 1000
	fixtureMaxAge = 10 * time.Minute
)

var fixtureEpoch = time.Date(2026, 3, 3, 10, 15, 0, 0, time.UTC)

// pipelineResult is what the receiver would do with one message: parse it
// with the Set, then hand the event to the Correlator.
type pipelineResult struct {
	Parsed Event // the parser's event, before correlation
	Err    error // the parse error; Out, OK and Note are unset if non-nil
	Out    Event // the Correlator's output
	OK     bool
	Note   string
}

// Grants reports whether the result puts an address into the grant table.
func (r pipelineResult) Grants() bool { return r.Err == nil && r.OK && r.Out.Kind == Login }

// runPipeline feeds a fixture's lines through set and a fresh Correlator in
// order. A refused message (an *AddrError) makes the Correlator forget its
// process, as the receiver must (see Correlator.Forget).
func runPipeline(set *Set, lines []fixtureLine) []pipelineResult {
	c := NewCorrelator(fixtureCap, fixtureMaxAge)
	out := make([]pipelineResult, len(lines))
	for i, fl := range lines {
		now := fixtureEpoch.Add(time.Duration(fl.N) * time.Second)
		r := &out[i]
		r.Parsed, r.Err = set.Parse(fl.Msg)
		switch {
		case r.Err == nil:
			r.Out, r.OK, r.Note = c.Feed(fl.Msg, r.Parsed, now)
		case !errors.Is(r.Err, ErrNoMatch):
			c.Forget(fl.Msg)
		}
	}
	return out
}

// goldenResult renders one pipeline result as
// "N\tlogin\taddr\tuser\tdaemon[\tsession]",
// "N\tlogout\taddr-or--\tuser\tdaemon\tsession", "N\tpending\t<note>" (an
// event the Correlator consumed), "N\tnomatch" or "N\trefused\t<error text>".
func goldenResult(n int, r pipelineResult) string {
	switch {
	case r.Err == nil && !r.OK:
		return fmt.Sprintf("%d\tpending\t%s", n, goldenField(r.Note))
	case r.Err == nil && r.Out.Kind == Logout:
		addr := "-"
		if r.Out.Addr.IsValid() {
			addr = r.Out.Addr.String()
		}
		return fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t%s", n, r.Out.Kind, addr, goldenField(r.Out.User),
			r.Out.Daemon, goldenField(r.Out.Session))
	case r.Err == nil:
		ev := r.Out
		s := fmt.Sprintf("%d\t%s\t%s\t%s\t%s", n, ev.Kind, ev.Addr, goldenField(ev.User), ev.Daemon)
		if ev.Session != "" {
			s += "\t" + goldenField(ev.Session)
		}
		return s
	case errors.Is(r.Err, ErrNoMatch):
		return fmt.Sprintf("%d\tnomatch", n)
	default:
		return fmt.Sprintf("%d\trefused\t%s", n, goldenField(r.Err.Error()))
	}
}

func TestGolden(t *testing.T) {
	set := NewSet(Builtin()...)
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
	set := NewSet(Builtin()...)
	for _, path := range fixtures(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".log")
		t.Run(name, func(t *testing.T) {
			var grants, refusals int
			lines := readFixture(t, path)
			for i, r := range runPipeline(set, lines) {
				fl := lines[i]
				granted := r.Grants()
				if granted {
					grants++
				} else {
					refusals++
				}
				where := fmt.Sprintf("%s:%d", filepath.Base(path), fl.N)
				switch fl.Expect {
				case "grant":
					if !granted {
						t.Errorf("%s: must grant, got %v %+v %q: %s", where, r.Err, r.Out, r.Note, fl.Raw)
					} else if r.Out.Daemon != name {
						t.Errorf("%s: granted by %q, want %q: %s", where, r.Out.Daemon, name, fl.Raw)
					}
				case "no-grant":
					if granted {
						t.Errorf("%s: must not grant, got %+v: %s", where, r.Out, fl.Raw)
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
				if name == "noise" && !errors.Is(r.Err, ErrNoMatch) {
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
