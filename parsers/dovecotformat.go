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

// dovecotFormat is a login_log_format_elements setting compiled into the
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
// the rip that grants is still the element's own.) No real user name
// needs it, and it keeps the classic injection out even if relaygate was
// given the wrong format.
//
// One fact beyond the format is used: a success line always names the SASL
// mechanism (Dovecot sets it for every successful login, LOGIN included),
// so the element holding %m is never left out. Without that, a user element
// at the front could swallow the whole rest of any line that ends in ">".
type dovecotFormat struct {
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

// parseDovecotLogFormat compiles a login_log_format_elements value, as
// written in dovecot.conf (`doveconf -h login_log_format_elements` prints it).
// It must name the remote IP (%r, %{rip} or %{remote_ip}) exactly once.
func parseDovecotLogFormat(format string) (*dovecotFormat, error) {
	if name, _, ok := strings.Cut(strings.TrimSpace(format), " "); ok && name == "login_log_format_elements" {
		// Without -h doveconf prints "name = value"; read as elements, the
		// name would make every login line unreadable.
		return nil, errors.New("give the value only, as `doveconf -h login_log_format_elements` prints it, not the setting's name")
	}
	f := &dovecotFormat{text: format}
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
func (f *dovecotFormat) String() string { return f.text }

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
