package parsers

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestEveryParserConforms holds every built-in parser to one shape, so
// that a parser added to builtin without the rest fails here:
//
//   - NAME.go declares it, NAME_test.go runs its table cases through
//     runCases (NAME is its Name() without dashes: "gnu-pop3d" is
//     gnupop3d.go);
//   - testdata/parsers/<Name()>.log is its fixture and <Name()>.golden
//     the pipeline's output for it (TestGolden, TestFixtureExpectations);
//   - the fixture has a grant line it parses, which is its
//     BenchmarkParseEveryDaemon case.
//
// And the other way: every fixture belongs to a built-in parser (or is
// noise.log, lines of programs no parser handles).
func TestEveryParserConforms(t *testing.T) {
	set := NewSet(builtin()...)
	names := map[string]bool{"noise": true}
	for _, c := range daemonBenchLines(t, set) {
		p := c.parser
		names[p.Name()] = true
		file := strings.ReplaceAll(p.Name(), "-", "")
		typ := reflect.TypeOf(p).Name()
		src, err := os.ReadFile(file + ".go")
		if err != nil || !strings.Contains(string(src), "\ntype "+typ+" ") {
			t.Errorf("%s: %s.go does not declare type %s (%v)", p.Name(), file, typ, err)
		}
		test, err := os.ReadFile(file + "_test.go")
		if err != nil || !strings.Contains(string(test), "runCases(t, "+typ+"{}") {
			t.Errorf("%s: %s_test.go does not run table cases with runCases(t, %s{}, …) (%v)", p.Name(), file, typ, err)
		}
		for _, ext := range []string{".log", ".golden"} {
			if _, err := os.Stat(fixturePath(p, ext)); err != nil {
				t.Errorf("%s: no %s: %v", p.Name(), ext, err)
			}
		}
		if !c.found {
			t.Errorf("%s: no grant line of %s parses, so it has no BenchmarkParseEveryDaemon case", p.Name(), fixturePath(p, ".log"))
		}
	}
	for _, ext := range []string{"*.log", "*.golden"} {
		files, err := filepath.Glob(filepath.Join(fixtureDir, ext))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if n := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f)); !names[n] {
				t.Errorf("%s belongs to no built-in parser", f)
			}
		}
	}
}

// TestDispatchPriority pins builtin's order where it matters: for a tag
// several parsers share, the Set tries them in that order, so the first one
// to find an event wins and, when none does, the first refusal is the one
// reported. A new shared tag, or a new parser on one, must be added here
// deliberately.
func TestDispatchPriority(t *testing.T) {
	want := map[string][]string{
		"imapd": {"courier", "cyrus", "uw"},
		"imaps": {"cyrus", "uw"},
		"pop3d": {"courier", "cyrus", "gnu-pop3d"},
		"pop3s": {"cyrus", "uw"},
	}
	set := NewSet(builtin()...)
	got := map[string][]string{}
	for tag, ps := range set.byProgram {
		if len(ps) > 1 {
			for _, p := range ps {
				got[tag] = append(got[tag], p.Name())
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parsers sharing a tag, in dispatch order:\n got %v\nwant %v", got, want)
	}
	// SelectBuiltin keeps the priority whatever order names come in.
	sel, err := SelectBuiltin([]string{"uw", "gnu-pop3d", "cyrus", "courier"})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, p := range sel {
		order = append(order, p.Name())
	}
	if !slices.Equal(order, []string{"courier", "cyrus", "uw", "gnu-pop3d"}) {
		t.Errorf("SelectBuiltin order %v", order)
	}
}

// TestRefusalReasonStyle holds every refusal in the fixtures to the one
// style AddrError documents: no daemon name or tag in front.
func TestRefusalReasonStyle(t *testing.T) {
	var words []string
	for _, p := range builtin() {
		words = append(words, p.Name(), strings.ReplaceAll(p.Name(), "-", ""))
		words = append(words, p.Programs()...)
	}
	set := NewSet(builtin()...)
	seen := 0
	for _, path := range fixtures(t) {
		for _, r := range runPipeline(set, readFixture(t, path)) {
			ae, ok := r.Err.(*AddrError)
			if !ok {
				continue
			}
			seen++
			first, _, _ := strings.Cut(ae.Reason, " ")
			first = strings.TrimSuffix(strings.ToLower(first), ":")
			if slices.Contains(words, first) {
				t.Errorf("%s: reason %q begins with a daemon's name", filepath.Base(path), ae.Reason)
			}
		}
	}
	if seen < 50 {
		t.Errorf("only %d refusals in the fixtures", seen)
	}
}

// TestDaemonsNameEveryEvent: Set.Daemons is what an origin file's daemon
// names are checked against, so every event any fixture line makes must
// carry one of its names.
func TestDaemonsNameEveryEvent(t *testing.T) {
	set := NewSet(builtin()...)
	names := map[string]bool{}
	for _, d := range set.Daemons() {
		names[d] = true
	}
	for _, path := range fixtures(t) {
		for _, fl := range readFixture(t, path) {
			ev, err := set.parse(fl.Msg)
			if err == nil && !names[ev.Daemon] {
				t.Errorf("%s: event daemon %q is not in Set.Daemons() %v", path, ev.Daemon, set.Daemons())
			}
		}
	}
	rules, err := ParseRulesConfig([]byte("rules:\n  - name: r1\n    daemon: mydaemon\n    programs: [x]\n    regex: '^login (?P<addr>\\S+)$'\n"), "rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	with := NewSet(rules.Rules[0])
	if got := with.Daemons(); len(got) != 1 || got[0] != "mydaemon" {
		t.Errorf("a rule's daemon: %v", got)
	}
}
