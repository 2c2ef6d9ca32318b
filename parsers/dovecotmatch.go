package parsers

import (
	"errors"
	"strings"
)

// The matcher that reads an element list against a dovecotFormat: every
// split of the line into the format's elements, merged into one summary.

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
	f     *dovecotFormat
	s     string
	memo  map[int]dvSummary
	steps int
}

// match reads the element list s. The summary has n == 0 when the format
// cannot produce s at all.
func (f *dovecotFormat) match(s string) (dvSummary, error) {
	m := dvMatcher{f: f, s: s}
	return m.from(0, 0)
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
