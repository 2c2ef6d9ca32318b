package origincheck

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/relaygate/relaygate/internal/origin"
)

// rsyslogSetup is what `relaygate check` reads from an rsyslog
// configuration: where it forwards, with which templates, and whether
// imuxsock attaches the writer's credentials. It is a reading of the
// common forms (module(), input(), action(), template(), include(),
// $IncludeConfig, $template, legacy @/@@ forwarding and the imuxsock
// legacy directives), not an rsyslog parser: rsyslogd -N1 is the judge of
// syntax.
type rsyslogSetup struct {
	files     []string
	forwards  []forward
	templates map[string]string // name, lower case → its definition
	// trusted: an imuxsock module or input that sets both Annotate and
	// ParseTrusted.
	trusted bool
	// imuxsockLoads counts module(load="imuxsock") statements; rsyslog
	// refuses the configuration when there are two.
	imuxsockLoads int
	// imjournal: imjournal is loaded. It puts every field of a journal
	// entry in $!, those its writer chose too (UID=0 from any local user,
	// which $!uid reads: rsyslog's variable names ignore case).
	imjournal bool
	// imuxsockVars is where the first of imuxsock's trusted properties
	// ($!uid, $!gid, $!pid, $!exe, $!appname, any case) is used ("" if
	// none is); journalVars whether the journal's trusted $!_UID is.
	imuxsockVars string
	journalVars  bool
	// inputGuard: the configuration tests $inputname == "imuxsock", as
	// the shipped example does before it reads $!uid.
	inputGuard bool
}

// forward is one action sending to the network.
type forward struct {
	where    string // file:line
	target   string
	port     int
	udp      bool
	tls      bool   // StreamDriverMode 1 (gtls, ossl)
	template string // "" when the action names none
}

func (f forward) String() string {
	proto := "tcp"
	switch {
	case f.udp:
		proto = "udp"
	case f.tls:
		proto = "tls"
	}
	return fmt.Sprintf("%s %s %s", f.where, proto, hostPort(f.target, f.port))
}

func hostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

// carriesOrigin says whether the forward's template writes the origin
// element: the template's own text names the SD-ID, or the variable the
// shipped example builds it in.
func (s *rsyslogSetup) carriesOrigin(f forward) bool {
	t, ok := s.templates[strings.ToLower(f.template)]
	return ok && (strings.Contains(t, origin.DefaultSDID) || strings.Contains(t, "relaygate_sd"))
}

// Limits of the reading: an include loop or a glob of thousands of files
// must not hang `relaygate check`.
const (
	maxRsyslogFiles = 256
	maxRsyslogDepth = 8
	maxRsyslogBytes = 1 << 20
)

// readRsyslog reads the configuration rooted at path and the files it
// includes.
func readRsyslog(path string) (*rsyslogSetup, error) {
	s := &rsyslogSetup{templates: map[string]string{}}
	legacy := map[string]bool{}
	if err := s.readFile(path, filepath.Dir(path), 0, legacy); err != nil {
		return nil, err
	}
	// The legacy directives only work when imuxsock was not loaded with
	// module(), which makes rsyslog refuse them.
	if s.imuxsockLoads == 0 && legacy["systemlogsocketannotate"] && legacy["systemlogparsetrusted"] {
		s.trusted = true
	}
	return s, nil
}

var (
	objectStart = regexp.MustCompile(`(?i)\b(module|input|action|template|include)\s*\(`)
	param       = regexp.MustCompile(`([A-Za-z0-9_.]+)\s*=\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s)]+)`)
	legacyFwd   = regexp.MustCompile(`(?:^|\s)(@@?)(?:\([^)]*\))?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+)(?::(\d+))?(?:;([A-Za-z0-9_.\-]+))?`)
	legacyTpl   = regexp.MustCompile(`(?i)^\$template\s+([^,\s]+)\s*,(.*)$`)
	legacyDir   = regexp.MustCompile(`(?i)^\$(\w+)\s+(\S+)`)
	// imuxsockVar is a use of one of imuxsock's trusted properties, which
	// imjournal's client fields collide with; journalUID the journal's
	// own _UID, which no client can set.
	imuxsockVar = regexp.MustCompile(`(?i)\$!(uid|gid|pid|exe|appname)\b`)
	journalUID  = regexp.MustCompile(`(?i)\$!_uid\b`)
	inputGuard  = regexp.MustCompile(`(?i)\$inputname\s*==\s*(?:"imuxsock"|'imuxsock')`)
)

func (s *rsyslogSetup) readFile(path, base string, depth int, legacy map[string]bool) error {
	if depth > maxRsyslogDepth {
		return fmt.Errorf("%s: includes nested deeper than %d", path, maxRsyslogDepth)
	}
	if len(s.files) >= maxRsyslogFiles {
		return fmt.Errorf("more than %d rsyslog configuration files", maxRsyslogFiles)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(data) > maxRsyslogBytes {
		return fmt.Errorf("%s: over %d bytes", path, maxRsyslogBytes)
	}
	s.files = append(s.files, path)
	text := stripComments(string(data))
	include := func(pattern string) error {
		if pattern == "" {
			return nil
		}
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(base, pattern)
		}
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return fmt.Errorf("%s: include %q: %w", path, pattern, err)
		}
		if len(matches) == 0 && !strings.ContainsAny(pattern, "*?[") {
			matches = []string{pattern} // a named file that is missing is an error
		}
		sort.Strings(matches)
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && fi.IsDir() {
				continue
			}
			if err := s.readFile(m, base, depth+1, legacy); err != nil {
				return err
			}
		}
		return nil
	}

	// Legacy directives and forwarding, line by line.
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		where := fmt.Sprintf("%s:%d", path, n+1)
		if s.imuxsockVars == "" && imuxsockVar.MatchString(line) {
			s.imuxsockVars = where
		}
		s.journalVars = s.journalVars || journalUID.MatchString(line)
		s.inputGuard = s.inputGuard || inputGuard.MatchString(line)
		if m := legacyTpl.FindStringSubmatch(line); m != nil {
			s.templates[strings.ToLower(m[1])] = m[2]
			continue
		}
		if m := legacyDir.FindStringSubmatch(line); m != nil {
			dir, val := strings.ToLower(m[1]), strings.ToLower(m[2])
			switch dir {
			case "includeconfig":
				if err := include(m[2]); err != nil {
					return err
				}
			case "systemlogsocketannotate", "systemlogparsetrusted":
				legacy[dir] = isOn(val)
			case "modload":
				s.imjournal = s.imjournal || strings.TrimSuffix(val, ".so") == "imjournal"
			}
			continue
		}
		if strings.HasPrefix(line, "$") {
			continue
		}
		for _, m := range legacyFwd.FindAllStringSubmatchIndex(blankQuotes(line), -1) {
			g := func(i int) string {
				if m[2*i] < 0 {
					return ""
				}
				return line[m[2*i]:m[2*i+1]]
			}
			port := 514
			if p, err := strconv.Atoi(g(3)); err == nil {
				port = p
			}
			s.forwards = append(s.forwards, forward{where: where, target: strings.Trim(g(2), "[]"),
				port: port, udp: g(1) == "@", template: g(4)})
		}
	}

	// RainerScript objects.
	for _, loc := range objectStart.FindAllStringSubmatchIndex(text, -1) {
		kind := strings.ToLower(text[loc[2]:loc[3]])
		end := closing(text, loc[1], '(', ')')
		if end < 0 {
			continue
		}
		params := parseParams(text[loc[1]:end])
		where := fmt.Sprintf("%s:%d", path, strings.Count(text[:loc[0]], "\n")+1)
		switch kind {
		case "module":
			s.imjournal = s.imjournal || strings.EqualFold(strings.TrimSuffix(params["load"], ".so"), "imjournal")
			if strings.EqualFold(params["load"], "imuxsock") {
				s.imuxsockLoads++
				if isOn(params["syssock.annotate"]) && isOn(params["syssock.parsetrusted"]) {
					s.trusted = true
				}
			}
		case "input":
			if strings.EqualFold(params["type"], "imuxsock") && isOn(params["annotate"]) && isOn(params["parsetrusted"]) {
				s.trusted = true
			}
		case "include":
			if err := include(params["file"]); err != nil {
				return err
			}
		case "template":
			def := text[loc[1]:end]
			if rest := strings.TrimLeft(text[end+1:], " \t\r\n"); strings.HasPrefix(rest, "{") {
				start := end + 1 + strings.Index(text[end+1:], "{")
				if bodyEnd := closing(text, start+1, '{', '}'); bodyEnd > 0 {
					def += text[start:bodyEnd]
				}
			}
			if name := params["name"]; name != "" {
				s.templates[strings.ToLower(name)] = def
			}
		case "action":
			if !strings.EqualFold(params["type"], "omfwd") {
				continue
			}
			f := forward{where: where, target: params["target"], port: 514, template: params["template"]}
			if p, err := strconv.Atoi(params["port"]); err == nil {
				f.port = p
			}
			f.udp = !strings.EqualFold(params["protocol"], "tcp")
			f.tls = !f.udp && params["streamdrivermode"] == "1"
			s.forwards = append(s.forwards, f)
		}
	}
	return nil
}

// stripComments removes '#' comments (outside quotes) and /* */ blocks,
// keeping the line breaks.
func stripComments(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && i+1 < len(s) {
				b.WriteByte(c)
				i++
				c = s[i]
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
			if i < len(s) {
				b.WriteByte('\n')
			}
			continue
		case c == '/' && i+1 < len(s) && s[i+1] == '*' && blockCommentAt(s, i):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				end = len(s) - i - 2
			}
			b.WriteString(strings.Repeat("\n", strings.Count(s[i:i+2+end], "\n")))
			i += end + 3
			continue
		}
		if c == '\n' {
			quote = 0 // no quoted string spans lines in the forms read here
		}
		b.WriteByte(c)
	}
	return b.String()
}

// blockCommentAt says whether the "/*" at s[i] opens a comment: it starts
// a word, outside a legacy "$Directive" line (whose paths, such as
// /etc/rsyslog.d/*.conf, hold "/*").
func blockCommentAt(s string, i int) bool {
	if i > 0 && s[i-1] != ' ' && s[i-1] != '\t' && s[i-1] != '\n' {
		return false
	}
	line := s[strings.LastIndexByte(s[:i], '\n')+1 : i]
	return !strings.HasPrefix(strings.TrimLeft(line, " \t"), "$")
}

// blankQuotes replaces quoted text by spaces, so that an '@' inside a
// string is never read as a forwarding action.
func blankQuotes(s string) string {
	b := []byte(s)
	quote := byte(0)
	for i := 0; i < len(b); i++ {
		switch {
		case quote != 0:
			if b[i] == '\\' && i+1 < len(b) {
				b[i], b[i+1] = ' ', ' '
				i++
				continue
			}
			if b[i] == quote {
				quote = 0
			}
			b[i] = ' '
		case b[i] == '"' || b[i] == '\'':
			quote = b[i]
			b[i] = ' '
		}
	}
	return string(b)
}

// closing returns the index of the bracket closing the one just before i,
// skipping quoted text; -1 if there is none.
func closing(s string, i int, open, close byte) int {
	depth := 1
	quote := byte(0)
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == open:
			depth++
		case c == close:
			if depth--; depth == 0 {
				return i
			}
		}
	}
	return -1
}

// parseParams reads name="value" pairs; names are lower-cased (rsyslog
// ignores their case), values unquoted.
func parseParams(s string) map[string]string {
	out := map[string]string{}
	for _, m := range param.FindAllStringSubmatch(s, -1) {
		v := m[2]
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') {
			v = v[1 : len(v)-1]
		}
		out[strings.ToLower(m[1])] = v
	}
	return out
}

func isOn(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "on", "yes", "1":
		return true
	}
	return false
}
