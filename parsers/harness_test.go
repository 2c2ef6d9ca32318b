package parsers

// The one harness every parser's tests use: table cases against one parser
// (runCases), and the fixture files the goldens, benchmarks and fuzz seeds
// read (readFixture).

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// parseCase is one message for one parser and what must come of it, as
// outcome renders it.
type parseCase struct {
	name, program, text, want string
}

// outcome renders a parse result: "kind|addr|user|session" ("-" for no
// address), "nomatch" or "refused" (an *AddrError; its text is covered by
// the goldens).
func outcome(t *testing.T, ev Event, err error) string {
	t.Helper()
	if err == nil {
		addr := "-"
		if ev.Addr.IsValid() {
			addr = ev.Addr.String()
		}
		return strings.Join([]string{ev.Kind.String(), addr, ev.User, ev.Session}, "|")
	}
	if errors.Is(err, ErrNoMatch) {
		return "nomatch"
	}
	var ae *AddrError
	if errors.As(err, &ae) {
		return "refused"
	}
	t.Fatalf("unexpected error type %T: %v", err, err)
	return ""
}

// runCases runs table cases against p alone and checks the invariants of
// every event: its Daemon is p's name, a Login or Connect carries an
// address and an Auth or Fail none, and an error comes with no event. A
// case may use a program p does not handle only to show it does not match.
func runCases(t *testing.T, p Parser, cases []parseCase) {
	t.Helper()
	progs := map[string]bool{}
	for _, prog := range p.Programs() {
		progs[prog] = true
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			if !progs[tt.program] && tt.want != "nomatch" {
				t.Fatalf("%s does not handle program %q", p.Name(), tt.program)
			}
			ev, err := p.Parse(Message{Program: tt.program, Text: tt.text})
			if got := outcome(t, ev, err); got != tt.want {
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
			case Logout:
			default:
				t.Errorf("event of kind %v", ev.Kind)
			}
		})
	}
}

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

// fixturePath is p's fixture (ext ".log") or golden file (ext ".golden").
func fixturePath(p Parser, ext string) string {
	return filepath.Join(fixtureDir, p.Name()+ext)
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

// Fixture pipeline settings: every fixture file runs through a fresh
// Correlator, with a clock that starts at fixtureEpoch and advances one
// second per line, so a fixture never comes near the age limit.
const (
	fixtureCap    = 1000
	fixtureMaxAge = 10 * time.Minute
)

var fixtureEpoch = time.Date(2026, 3, 3, 10, 15, 0, 0, time.UTC)
