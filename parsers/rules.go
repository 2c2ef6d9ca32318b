package parsers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"regexp/syntax"
	"strings"

	"gopkg.in/yaml.v3"
)

// Rule is an operator's own login or logout shape for a daemon relaygate
// has no built-in parser for. It decides on the program tag and the message
// text only, like every built-in parser.
type Rule struct {
	name     string
	daemon   string
	programs []string
	re       *regexp.Regexp
	kind     Kind
	addr     int // submatch indexes; -1 when the group is absent
	user     int
	session  int
}

// Name implements Parser: the rule's name.
func (r *Rule) Name() string { return r.name }

// Programs implements Parser.
func (r *Rule) Programs() []string { return r.programs }

// Daemon is the daemon name the rule's events carry.
func (r *Rule) Daemon() string { return r.daemon }

// Parse implements Parser.
func (r *Rule) Parse(m Message) (Event, error) {
	sub := r.re.FindStringSubmatch(m.Text)
	if sub == nil {
		return Event{}, ErrNoMatch
	}
	ev := Event{Kind: r.kind, Daemon: r.daemon}
	if r.user >= 0 {
		ev.User = sub[r.user]
	}
	if r.session >= 0 {
		ev.Session = sub[r.session]
	}
	a, err := parseAddr(sub[r.addr])
	if err != nil {
		if r.kind == Logout {
			return Event{}, ErrNoMatch
		}
		return Event{}, err
	}
	ev.Addr = a
	if r.kind == Logout && ev.Session == "" {
		return Event{}, ErrNoMatch
	}
	return ev, nil
}

// rulesFile is the YAML document -rules reads.
type rulesFile struct {
	Rules            []ruleSpec `yaml:"rules"`
	DovecotLogFormat string     `yaml:"dovecot_log_format"`
}

// RulesConfig is everything a rules file sets.
type RulesConfig struct {
	Rules []*Rule
	// DovecotLogFormat is the site's login_log_format_elements, checked
	// with parseDovecotLogFormat; "" when the file does not set it.
	DovecotLogFormat string
}

type ruleSpec struct {
	Name     string   `yaml:"name"`
	Daemon   string   `yaml:"daemon"`
	Programs []string `yaml:"programs"`
	Regex    string   `yaml:"regex"`
	Kind     string   `yaml:"kind"`
}

// parseRules reads a rules file's content. file is used in error messages,
// which name the file, the rule and the problem.
func parseRules(data []byte, file string) ([]*Rule, error) {
	c, err := ParseRulesConfig(data, file)
	if err == nil && len(c.Rules) == 0 {
		err = fmt.Errorf("%s: no rules (want a top-level \"rules:\" list)", file)
	}
	return c.Rules, err
}

// ParseRulesConfig reads a rules file that may also (or only) set
// dovecot_log_format.
func ParseRulesConfig(data []byte, file string) (RulesConfig, error) {
	var doc rulesFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return RulesConfig{}, fmt.Errorf("%s: no rules", file)
		}
		return RulesConfig{}, fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Rules) == 0 && doc.DovecotLogFormat == "" {
		return RulesConfig{}, fmt.Errorf("%s: no rules (want a top-level \"rules:\" list)", file)
	}
	// Every problem in the file is named at once, so one round of editing
	// fixes them all (a SIGHUP that refuses a file says everything wrong).
	var errs []error
	if doc.DovecotLogFormat != "" {
		if _, err := parseDovecotLogFormat(doc.DovecotLogFormat); err != nil {
			errs = append(errs, fmt.Errorf("%s: dovecot_log_format: %w", file, err))
		}
	}
	seen := make(map[string]bool)
	rules := make([]*Rule, 0, len(doc.Rules))
	for i, spec := range doc.Rules {
		r, err := compileRule(spec)
		if err != nil {
			label := fmt.Sprintf("rule %d", i+1)
			if spec.Name != "" {
				label += fmt.Sprintf(" (%q)", spec.Name)
			}
			errs = append(errs, fmt.Errorf("%s: %s: %w", file, label, err))
			continue
		}
		if seen[r.name] {
			errs = append(errs, fmt.Errorf("%s: rule %d (%q): name used twice", file, i+1, r.name))
			continue
		}
		seen[r.name] = true
		rules = append(rules, r)
	}
	if err := errors.Join(errs...); err != nil {
		return RulesConfig{}, err
	}
	return RulesConfig{Rules: rules, DovecotLogFormat: doc.DovecotLogFormat}, nil
}

func compileRule(spec ruleSpec) (*Rule, error) {
	r := &Rule{name: spec.Name, daemon: spec.Daemon, addr: -1, user: -1, session: -1}
	if r.name == "" {
		return nil, errors.New("name: missing")
	}
	if !validName(r.name) {
		return nil, fmt.Errorf("name %q: use letters, digits, '.', '_' and '-'", r.name)
	}
	if r.daemon == "" {
		r.daemon = r.name
	} else if !validName(r.daemon) {
		return nil, fmt.Errorf("daemon %q: use letters, digits, '.', '_' and '-'", r.daemon)
	}
	if len(spec.Programs) == 0 {
		return nil, errors.New("programs: missing (the syslog tags the rule applies to, e.g. [mypop3d])")
	}
	for _, p := range spec.Programs {
		if p == "" || strings.ContainsAny(p, " \t[]:") {
			return nil, fmt.Errorf("programs: %q is not a syslog program tag", p)
		}
		r.programs = append(r.programs, normalizeProgram(p))
	}
	switch spec.Kind {
	case "", "login":
		r.kind = Login
	case "logout":
		r.kind = Logout
	default:
		return nil, fmt.Errorf("kind %q: want login or logout", spec.Kind)
	}
	if spec.Regex == "" {
		return nil, errors.New("regex: missing")
	}
	re, err := regexp.Compile(spec.Regex)
	if err != nil {
		return nil, fmt.Errorf("regex: %w", err)
	}
	r.re = re
	for i, g := range re.SubexpNames() {
		switch g {
		case "":
		case "addr":
			r.addr = i
		case "user":
			r.user = i
		case "session":
			r.session = i
		default:
			return nil, fmt.Errorf("regex: unknown named group %q (allowed: addr, user, session)", g)
		}
	}
	if r.addr < 0 {
		return nil, errors.New("regex: needs a named group (?P<addr>...) for the client address")
	}
	if r.kind == Logout && r.session < 0 {
		return nil, errors.New("regex: a logout rule needs a named group (?P<session>...) naming the session its login opened")
	}
	// Every built-in parser decides on the start of the message, where only
	// the daemon writes. An unanchored rule would also match its success
	// words quoted inside a failure line or a user name, so it is refused
	// rather than silently anchored (which could change what it matches).
	if tree, err := syntax.Parse(spec.Regex, syntax.Perl); err != nil || !anchoredAtStart(tree) {
		return nil, errors.New(`regex: must be anchored at the start of the message: begin it with ^ (without the m flag) or \A, in every alternative`)
	}
	return r, nil
}

// anchoredAtStart reports whether every match of re must begin at the
// start of the text.
func anchoredAtStart(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpBeginText:
		return true
	case syntax.OpCapture:
		return anchoredAtStart(re.Sub[0])
	case syntax.OpConcat:
		return len(re.Sub) > 0 && anchoredAtStart(re.Sub[0])
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			if !anchoredAtStart(sub) {
				return false
			}
		}
		return len(re.Sub) > 0
	}
	return false
}

func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}
