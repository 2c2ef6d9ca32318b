package journal

import (
	"unicode/utf16"
	"unicode/utf8"
)

// str reads a JSON string into buf, unescaped, as encoding/json does:
// invalid UTF-8 and lone surrogates become U+FFFD.
func (d *decoder) str(buf []byte) ([]byte, error) {
	if !d.eat('"') {
		return nil, errSyntax
	}
	for {
		// The common run: no quote, backslash, control or non-ASCII byte.
		j := d.i
		for j < len(d.b) {
			c := d.b[j]
			if c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
				break
			}
			j++
		}
		buf = append(buf, d.b[d.i:j]...)
		d.i = j
		if d.i >= len(d.b) {
			return nil, errSyntax
		}
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return buf, nil
		case c < 0x20:
			return nil, errSyntax
		case c >= 0x80:
			r, size := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && size == 1 {
				buf = utf8.AppendRune(buf, utf8.RuneError)
			} else {
				buf = append(buf, d.b[d.i:d.i+size]...)
			}
			d.i += size
		default: // backslash
			if d.i+1 >= len(d.b) {
				return nil, errSyntax
			}
			e := d.b[d.i+1]
			d.i += 2
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return nil, errSyntax
				}
				if utf16.IsSurrogate(r) {
					// A pair, or U+FFFD for a lone half.
					save := d.i
					if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
						d.i += 2
						if r2, ok := d.hex4(); ok {
							if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
								buf = utf8.AppendRune(buf, dec)
								continue
							}
						}
					}
					d.i = save
					r = utf8.RuneError
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return nil, errSyntax
			}
		}
	}
}

func (d *decoder) hex4() (rune, bool) {
	if len(d.b)-d.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}

// skip passes over one JSON value of any kind, checking its syntax.
func (d *decoder) skip(depth int) error {
	if depth > maxDepth {
		return errTooDeep
	}
	d.space()
	if d.i >= len(d.b) {
		return errSyntax
	}
	switch c := d.b[d.i]; {
	case c == '"':
		return d.skipStr()
	case c == '[' || c == '{':
		closer := byte(']')
		if c == '{' {
			closer = '}'
		}
		d.i++
		d.space()
		if d.eat(closer) {
			return nil
		}
		for {
			if c == '{' {
				d.space()
				if err := d.skipStr(); err != nil {
					return err
				}
				d.space()
				if !d.eat(':') {
					return errSyntax
				}
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			d.space()
			if d.eat(',') {
				continue
			}
			if d.eat(closer) {
				return nil
			}
			return errSyntax
		}
	case c == 't':
		return d.lit("true")
	case c == 'f':
		return d.lit("false")
	case c == 'n':
		return d.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	}
	return errSyntax
}

func (d *decoder) skipStr() error {
	if !d.eat('"') {
		return errSyntax
	}
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return nil
		case c < 0x20:
			return errSyntax
		case c == '\\':
			if d.i+1 >= len(d.b) {
				return errSyntax
			}
			switch d.b[d.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i += 2
			case 'u':
				d.i += 2
				if _, ok := d.hex4(); !ok {
					return errSyntax
				}
			default:
				return errSyntax
			}
		default:
			d.i++
		}
	}
	return errSyntax
}

// number checks JSON's number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *decoder) number() error {
	d.eat('-')
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.eat('0') {
		// no more integer digits after a leading zero
	} else if digits() == 0 {
		return errSyntax
	}
	if d.eat('.') && digits() == 0 {
		return errSyntax
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if !d.eat('+') {
			d.eat('-')
		}
		if digits() == 0 {
			return errSyntax
		}
	}
	return nil
}
