package parsers

import (
	"os"
	"strings"
	"testing"
)

func TestExampleRulesFile(t *testing.T) {
	data, err := os.ReadFile("../examples/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := parseRules(data, "rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ps []Parser
	for _, r := range rules {
		ps = append(ps, r)
	}
	set := NewSet(ps...)
	for _, tt := range []struct{ program, text, want string }{
		{"mypop3d", "auth ok: user=alice client=192.0.2.10 conn=42", "login|192.0.2.10|alice|42"},
		{"MyPop3d-SSL", "auth ok: user=bob client=::ffff:198.51.100.1 conn=7", "login|198.51.100.1|bob|7"},
		{"mypop3d", "closed: user=alice client=192.0.2.10 conn=42 bytes=100", "logout|192.0.2.10|alice|42"},
		{"mypop3d", "auth failed: user=alice client=192.0.2.10 conn=43", "nomatch"},
		{"mypop3d", "auth ok: user=alice client=0.0.0.0 conn=44", "refused"},
		{"sshd", "auth ok: user=alice client=192.0.2.10 conn=42", "nomatch"},
	} {
		ev, err := set.parse(Message{Program: tt.program, Text: tt.text})
		if got := outcome(t, ev, err); got != tt.want {
			t.Errorf("Parse(%q, %q) = %q, want %q", tt.program, tt.text, got, tt.want)
		}
		if err == nil && ev.Daemon != "mypop" {
			t.Errorf("daemon = %q, want mypop", ev.Daemon)
		}
	}
}

func TestRulesValidation(t *testing.T) {
	const ok = "  - name: r\n    programs: [p]\n    regex: '^from (?P<addr>\\S+)'\n"
	for _, tt := range []struct{ name, yaml, want string }{
		{"empty", "", "no rules"},
		{"no list", "other: 1\n", "field other not found"},
		{"no name", "rules:\n  - programs: [p]\n    regex: '(?P<addr>x)'\n", "rule 1: name: missing"},
		{"bad regex", "rules:\n  - name: r\n    programs: [p]\n    regex: '(?P<addr>x'\n", `rule 1 ("r"): regex: error parsing regexp`},
		{"no addr group", "rules:\n  - name: r\n    programs: [p]\n    regex: 'from (\\S+)'\n", "needs a named group (?P<addr>"},
		{"unknown group", "rules:\n  - name: r\n    programs: [p]\n    regex: '(?P<addr>\\S+) (?P<usr>\\S+)'\n", `unknown named group "usr"`},
		{"no programs", "rules:\n  - name: r\n    regex: '(?P<addr>\\S+)'\n", "programs: missing"},
		{"bad kind", "rules:\n" + ok + "    kind: maybe\n", `kind "maybe"`},
		{"logout without session", "rules:\n" + ok + "    kind: logout\n", "logout rule needs a named group (?P<session>"},
		{"duplicate", "rules:\n" + ok + strings.Replace(ok, "name: r", "name: r", 1), `rule 2 ("r"): name used twice`},
		{"unanchored", "rules:\n  - name: r\n    programs: [p]\n    regex: 'from (?P<addr>\\S+)'\n", "must be anchored at the start"},
		{"multi-line ^", "rules:\n  - name: r\n    programs: [p]\n    regex: '(?m)^from (?P<addr>\\S+)'\n", "must be anchored at the start"},
		{"one alternative unanchored", "rules:\n  - name: r\n    programs: [p]\n    regex: '^ok (?P<addr>\\S+)|from (?P<addr>\\S+)'\n", "must be anchored at the start"},
		{"typo field", "rules:\n" + ok + "    regexp: x\n", "field regexp not found"},
	} {
		_, err := parseRules([]byte(tt.yaml), "my-rules.yaml")
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "my-rules.yaml") {
			t.Errorf("%s: error %v, want one naming the file and containing %q", tt.name, err, tt.want)
		}
	}
}

// TestRulesNameEveryError: a file with several broken rules names each of
// them, so one round of editing fixes the file (a refused SIGHUP used to
// name only the first).
func TestRulesNameEveryError(t *testing.T) {
	yaml := "dovecot_log_format: 'user=<%u> %q'\nrules:\n" +
		"  - name: a\n    programs: [p]\n    regex: 'from (?P<addr>\\S+)'\n" +
		"  - name: b\n    programs: [p]\n    regex: '^ok (?P<addr>\\S+)'\n" +
		"  - name: c\n    regex: '^ok (?P<addr>\\S+)'\n"
	_, err := parseRules([]byte(yaml), "my-rules.yaml")
	if err == nil {
		t.Fatal("parseRules accepted a broken file")
	}
	for _, want := range []string{"dovecot_log_format", `rule 1 ("a"): regex: must be anchored`, `rule 3 ("c"): programs: missing`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if strings.Contains(err.Error(), `rule 2 ("b")`) {
		t.Errorf("error %q names the good rule", err)
	}
}
