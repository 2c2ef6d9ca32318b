package parsers

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultDovecotLogFormat is Dovecot's default login_log_format_elements
// (2.2 to 2.3; 2.4 spells the variables %{user}, %{mechanism},
// %{remote_ip}, %{local_ip}, %{mail_pid} and %{secured} but writes the same
// text). 1.x to 2.1 logged a subset of these elements in this order, which
// the grammar reads too: every element but the user's and the method's may
// be left out.
const DefaultDovecotLogFormat = "user=<%u> method=%m rip=%r lip=%l mpid=%e %c session=<%{session}>"

// DovecotFormat is a login_log_format_elements setting compiled into the
// grammar of the element list Dovecot writes after "Login: ". Dovecot
// expands each space-separated element, leaves out every element whose
// variables all expanded empty (except one naming the user, which it always
// writes), and joins the rest with ", ", without escaping anything: a user
// name may contain ">", ", " and "=" and so spell whole elements.
//
// A line is therefore read against the grammar, never searched. Every way
// the line can be split into the format's elements, in the format's order,
// is found; the line grants only if every split has the same rip. The
// split Dovecot made is always among them (the grammar admits everything
// Dovecot can write, and a little more), so a user name that reads as a
// different rip, or as a rip where Dovecot logged none, makes two splits
// disagree and the line is refused. Names that merely contain ", " or ">"
// and cannot be read as elements still grant.
//
// Defence in depth: a line whose user name contains the rip element's key
// ("rip=") is refused even when it reads only one way. (The %c text is held
// to its few shapes instead; a TLS error after "TLS: " is Dovecot's, and
// the rip that grants is still the element's own.) No real user name needs it, and it keeps the classic
// injection out even if relaygate was given the wrong format.
//
// One fact beyond the format is used: a success line always names the SASL
// mechanism (Dovecot sets it for every successful login, LOGIN included),
// so the element holding %m is never left out. Without that, a user element
// at the front could swallow the whole rest of any line that ends in ">".
type DovecotFormat struct {
	text     string
	elems    []dvElem
	reqAfter []bool // reqAfter[j]: an element after j is required
	ripKey   string // the literal before the rip variable ("rip="), or ""
}

// dvMaxSteps bounds the work on one line. A real line needs a few dozen
// steps; a line built to have very many splits is refused, not searched.
const dvMaxSteps = 4096

// dvMemoAfter is the step count after which a line's partial readings are
// remembered (dynamic programming), so that the budget is spent on new work.
const dvMemoAfter = 64

type dvClass uint8

const (
	dvFree    dvClass = iota // client or other free text: anything, even ", "
	dvIP                     // net_ip2addr output
	dvDigits                 // pids and ports
	dvWord                   // mechanism, session id, service: no ", "
	dvSecured                // %c: "secured", or "TLS" and what follows it
)

type dvRole uint8

const (
	dvNone dvRole = iota
	dvRip
	dvMech
	dvSession
	dvUser
)

type dvTok struct {
	lit   string // a literal when isVar is false
	isVar bool
	class dvClass
	role  dvRole
}

type dvElem struct {
	toks     []dvTok
	user     bool // written even when its variables are empty
	required bool // in every success line: it names the mechanism
}

type dvVar struct {
	class dvClass
	role  dvRole
	user  bool // Dovecot writes the element even when this is empty
}

// dvVars are the variables of Dovecot 2.3's and 2.4's login log table. The
// user-chosen ones are free text, and so is everything the operator
// configures. %c is "secured", "TLS", "TLS handshaking", or one of the last
// two followed by ": " and an OpenSSL error, which is free text: a bare free
// element could swallow any elements, so %c is held to that shape.
var dvVars = map[string]dvVar{
	"u": {dvFree, dvUser, true}, "user": {dvFree, dvUser, true},
	"n": {dvFree, dvNone, true}, "username": {dvFree, dvNone, true},
	"d": {dvFree, dvNone, false}, "domain": {dvFree, dvNone, false},
	"s": {dvWord, dvNone, false}, "service": {dvWord, dvNone, false}, "protocol": {dvWord, dvNone, false},
	"h": {dvFree, dvNone, false}, "home": {dvFree, dvNone, false},
	"l": {dvIP, dvNone, false}, "lip": {dvIP, dvNone, false}, "local_ip": {dvIP, dvNone, false},
	"r": {dvIP, dvRip, false}, "rip": {dvIP, dvRip, false}, "remote_ip": {dvIP, dvRip, false},
	"p": {dvDigits, dvNone, false}, "pid": {dvDigits, dvNone, false},
	"m": {dvWord, dvMech, false}, "mech": {dvWord, dvMech, false}, "mechanism": {dvWord, dvMech, false},
	"a": {dvDigits, dvNone, false}, "lport": {dvDigits, dvNone, false}, "local_port": {dvDigits, dvNone, false},
	"b": {dvDigits, dvNone, false}, "rport": {dvDigits, dvNone, false}, "remote_port": {dvDigits, dvNone, false},
	"c": {dvSecured, dvNone, false}, "secured": {dvSecured, dvNone, false},
	"k": {dvFree, dvNone, false}, "ssl_security": {dvFree, dvNone, false},
	"e": {dvDigits, dvNone, false}, "mail_pid": {dvDigits, dvNone, false},
	"session":  {dvWord, dvSession, false},
	"real_lip": {dvIP, dvNone, false}, "real_local_ip": {dvIP, dvNone, false},
	"real_rip": {dvIP, dvNone, false}, "real_remote_ip": {dvIP, dvNone, false},
	"real_lport": {dvDigits, dvNone, false}, "real_local_port": {dvDigits, dvNone, false},
	"real_rport": {dvDigits, dvNone, false}, "real_remote_port": {dvDigits, dvNone, false},
	"orig_user": {dvFree, dvNone, false}, "original_user": {dvFree, dvNone, false},
	"orig_username": {dvFree, dvNone, false}, "original_username": {dvFree, dvNone, false},
	"orig_domain": {dvFree, dvNone, false}, "original_domain": {dvFree, dvNone, false},
	"auth_user": {dvFree, dvNone, false}, "auth_username": {dvFree, dvNone, false},
	"auth_domain": {dvFree, dvNone, false},
	"listener":    {dvFree, dvNone, false}, "local_name": {dvFree, dvNone, false},
	"ssl_ja3": {dvFree, dvNone, false}, "ssl_ja3_hash": {dvFree, dvNone, false},
}

// ParseDovecotLogFormat compiles a login_log_format_elements value, as
// written in dovecot.conf (`doveconf login_log_format_elements` prints it).
// It must name the remote IP (%r, %{rip} or %{remote_ip}) exactly once.
func ParseDovecotLogFormat(format string) (*DovecotFormat, error) {
	f := &DovecotFormat{text: format}
	roles := map[dvRole]int{}
	for _, word := range strings.Fields(format) {
		e, err := compileDvElem(word, roles)
		if err != nil {
			return nil, fmt.Errorf("dovecot log format element %q: %w", word, err)
		}
		f.elems = append(f.elems, e)
		for i, t := range e.toks {
			if t.role == dvRip && i > 0 {
				f.ripKey = e.toks[i-1].lit
			}
		}
	}
	f.reqAfter = make([]bool, len(f.elems))
	for j := len(f.elems) - 2; j >= 0; j-- {
		f.reqAfter[j] = f.reqAfter[j+1] || f.elems[j+1].required
	}
	switch {
	case len(f.elems) == 0:
		return nil, errors.New("dovecot log format is empty")
	case roles[dvRip] != 1:
		return nil, fmt.Errorf("dovecot log format must contain the remote IP (%%r, %%{rip} or %%{remote_ip}) exactly once, not %d times", roles[dvRip])
	case roles[dvMech] > 1, roles[dvSession] > 1:
		return nil, errors.New("dovecot log format names the mechanism or the session more than once")
	}
	return f, nil
}

// String returns the format as it was given.
func (f *DovecotFormat) String() string { return f.text }

func compileDvElem(word string, roles map[dvRole]int) (dvElem, error) {
	var e dvElem
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			e.toks = append(e.toks, dvTok{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(word); i++ {
		if word[i] != '%' {
			lit.WriteByte(word[i])
			continue
		}
		i++
		var name string
		switch {
		case i >= len(word):
			return e, errors.New("ends in a lone %")
		case word[i] == '%':
			lit.WriteByte('%')
			continue
		case word[i] == '{':
			end := strings.IndexByte(word[i:], '}')
			if end < 0 {
				return e, errors.New("unterminated %{")
			}
			name = word[i+1 : i+end]
			i += end
		default:
			name = word[i : i+1]
		}
		v, ok := dvVars[name]
		if !ok {
			prefix, _, hasColon := strings.Cut(name, ":")
			switch {
			case hasColon && (prefix == "passdb" || prefix == "env"):
				v = dvVar{class: dvFree}
			case strings.ContainsAny(name, "|:"):
				return e, fmt.Errorf("%%{%s}: filters and modifiers are not supported", name)
			case len(name) == 1:
				return e, fmt.Errorf("%%%s: unknown variable, or a modifier (modifiers are not supported)", name)
			default:
				return e, fmt.Errorf("%%{%s}: unknown variable", name)
			}
		}
		if n := len(e.toks); lit.Len() == 0 && n > 0 && e.toks[n-1].isVar {
			return e, errors.New("two variables without text between them cannot be told apart")
		}
		flush()
		e.toks = append(e.toks, dvTok{isVar: true, class: v.class, role: v.role})
		e.user = e.user || v.user
		e.required = e.required || v.role == dvMech
		roles[v.role]++
	}
	flush()
	return e, nil
}

// dvParse is what one split of a line says.
type dvParse struct {
	rip, mech, session, user string
	tainted                  bool // free text holds the rip key
}

// dvSummary merges the splits of (part of) a line. first holds the values
// of the first split; the flags say whether any other split disagrees.
type dvSummary struct {
	n                   int
	first               dvParse
	ripMixed, sessMixed bool
	anon                bool
	tainted             bool
}

func (s *dvSummary) merge(o dvSummary) {
	if o.n == 0 {
		return
	}
	if s.n == 0 {
		*s = o
		return
	}
	s.n += o.n
	s.ripMixed = s.ripMixed || o.ripMixed || s.first.rip != o.first.rip
	s.sessMixed = s.sessMixed || o.sessMixed || s.first.session != o.first.session
	s.anon = s.anon || o.anon
	s.tainted = s.tainted || o.tainted
}

// set puts the values one element contributed into every split of s.
// Roles occur once in a format, so the rest of the line never has them.
func (s *dvSummary) set(vals *dvParse) {
	if vals.rip != "" {
		s.first.rip = vals.rip
	}
	if vals.session != "" {
		s.first.session = vals.session
	}
	if vals.user != "" {
		s.first.user = vals.user
	}
	if vals.mech != "" {
		s.first.mech = vals.mech
		s.anon = s.anon || strings.EqualFold(vals.mech, "ANONYMOUS")
	}
	s.tainted = s.tainted || vals.tainted
}

var errDvTooAmbiguous = errors.New("too many ways to read")

type dvMatcher struct {
	f     *DovecotFormat
	s     string
	memo  map[int]dvSummary
	steps int
}

// match reads the element list s. The summary has n == 0 when the format
// cannot produce s at all.
func (f *DovecotFormat) match(s string) (dvSummary, error) {
	m := dvMatcher{f: f, s: s}
	sum, err := m.from(0, 0)
	return sum, err
}

// from reads the rest of the line, whose next element starts at pos and
// is element ei or a later one (the ones between were left out).
func (m *dvMatcher) from(ei, pos int) (dvSummary, error) {
	key := ei*(len(m.s)+1) + pos
	if sum, ok := m.memo[key]; ok {
		return sum, nil
	}
	if m.memo == nil && m.steps > dvMemoAfter {
		// A real line reads in a few dozen steps without remembering
		// anything; only one with many readings needs the table.
		m.memo = make(map[int]dvSummary)
	}
	var sum dvSummary
	for j := ei; j < len(m.f.elems); j++ {
		var err error
		m.matchToks(m.f.elems[j], 0, pos, dvParse{}, false, func(end int, vals dvParse) {
			if err != nil {
				return
			}
			var rest dvSummary
			switch {
			case end == len(m.s):
				if !m.f.reqAfter[j] {
					rest = dvSummary{n: 1}
				}
			case end == 0:
				// Dovecot adds ", " only after text.
				rest, err = m.from(j+1, end)
			case strings.HasPrefix(m.s[end:], ", "):
				rest, err = m.from(j+1, end+2)
			}
			if rest.n == 0 {
				return
			}
			rest.set(&vals)
			sum.merge(rest)
		})
		if err == nil && m.steps > dvMaxSteps {
			err = errDvTooAmbiguous
		}
		if err != nil {
			return dvSummary{}, err
		}
		if m.f.elems[j].required {
			break // it cannot be left out
		}
	}
	if m.memo != nil {
		m.memo[key] = sum
	}
	return sum, nil
}

// matchToks matches the tokens of e from toks index i at pos and calls
// emit with every position the element can end at.
func (m *dvMatcher) matchToks(e dvElem, i, pos int, vals dvParse, nonEmpty bool, emit func(int, dvParse)) {
	m.steps++
	if m.steps > dvMaxSteps {
		return
	}
	if i == len(e.toks) {
		if nonEmpty || e.user {
			emit(pos, vals)
		}
		return
	}
	t := e.toks[i]
	if !t.isVar {
		if strings.HasPrefix(m.s[pos:], t.lit) {
			m.matchToks(e, i+1, pos+len(t.lit), vals, nonEmpty, emit)
		}
		return
	}
	limit := pos + dvExtent(t.class, m.s[pos:])
	try := func(end, next int) {
		v := vals
		val := m.s[pos:end]
		if t.class == dvSecured && !dvSecuredValue(val) || t.role == dvMech && val == "" {
			return
		}
		switch t.role {
		case dvRip:
			v.rip = val
		case dvMech:
			v.mech = val
		case dvSession:
			v.session = val
		case dvUser:
			v.user = val
		}
		if t.class == dvFree && m.f.ripKey != "" && strings.Contains(val, m.f.ripKey) {
			v.tainted = true
		}
		m.matchToks(e, next, end, v, nonEmpty || val != "", emit)
	}
	if i+1 < len(e.toks) {
		// Compilation puts a literal after every variable but the last.
		lit := e.toks[i+1].lit
		for q := pos; q <= limit && m.steps <= dvMaxSteps; {
			k := strings.Index(m.s[q:], lit)
			if k < 0 || q+k > limit {
				break
			}
			try(q+k, i+1)
			q += k + 1
		}
		return
	}
	// The variable ends the element: the value runs to a ", " or the end.
	for q := pos; q <= limit && m.steps <= dvMaxSteps; {
		k := strings.Index(m.s[q:], ", ")
		if k < 0 || q+k > limit {
			if limit == len(m.s) {
				try(len(m.s), i+1)
			}
			break
		}
		try(q+k, i+1)
		q += k + 1
	}
}

// dvExtent is the length of the longest prefix of s a variable of class c
// could have written. Every class is closed under prefixes, so any shorter
// value is possible too.
func dvExtent(c dvClass, s string) int {
	switch c {
	case dvFree, dvSecured:
		return len(s)
	case dvWord:
		if i := strings.Index(s, ", "); i >= 0 {
			return i
		}
		return len(s)
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		ok := ch >= '0' && ch <= '9'
		if c == dvIP {
			ok = ok || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F' || ch == ':' || ch == '.'
		}
		if !ok {
			return i
		}
	}
	return len(s)
}

// dvSecuredValue reports whether v is a value of %c: empty, "secured",
// "TLS", "TLS handshaking", or one of the last two with ": " and an error.
func dvSecuredValue(v string) bool {
	switch v {
	case "", "secured", "TLS", "TLS handshaking":
		return true
	}
	return strings.HasPrefix(v, "TLS: ") || strings.HasPrefix(v, "TLS handshaking: ")
}
