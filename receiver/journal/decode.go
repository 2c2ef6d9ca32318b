package journal

import (
	"errors"
)

// The fields relaygate reads from an entry of `journalctl --output=json`.
// Names beginning with "_" are trusted: journald sets them itself from the
// kernel's view of the writer, and a client cannot set or override them
// (systemd.journal-fields(7)); "__" names are journald's addressing fields.
// Everything else (MESSAGE, SYSLOG_IDENTIFIER, SYSLOG_PID) is the writer's
// own text.
const (
	fCursor = iota
	fRealtime
	fMessage
	fIdentifier
	fSyslogPID
	fPID
	fUID
	fGID
	fComm
	fExe
	fUnit
	fHostname
	nFields
)

// fieldNames are the journal names of the fields above, in order.
var fieldNames = [nFields]string{
	fCursor: "__CURSOR", fRealtime: "__REALTIME_TIMESTAMP", fMessage: "MESSAGE",
	fIdentifier: "SYSLOG_IDENTIFIER", fSyslogPID: "SYSLOG_PID", fPID: "_PID",
	fUID: "_UID", fGID: "_GID", fComm: "_COMM", fExe: "_EXE", fUnit: "_SYSTEMD_UNIT",
	fHostname: "_HOSTNAME",
}

// outputFields is journalctl's --output-fields: only what relaygate reads
// (__CURSOR and __REALTIME_TIMESTAMP are always printed), which makes each
// line a third of its full size.
const outputFields = "MESSAGE,SYSLOG_IDENTIFIER,SYSLOG_PID,_PID,_UID,_GID,_COMM,_EXE,_SYSTEMD_UNIT,_HOSTNAME"

func fieldIndex(name []byte) int {
	// A switch on string(name) does not allocate.
	switch string(name) {
	case "__CURSOR":
		return fCursor
	case "__REALTIME_TIMESTAMP":
		return fRealtime
	case "MESSAGE":
		return fMessage
	case "SYSLOG_IDENTIFIER":
		return fIdentifier
	case "SYSLOG_PID":
		return fSyslogPID
	case "_PID":
		return fPID
	case "_UID":
		return fUID
	case "_GID":
		return fGID
	case "_COMM":
		return fComm
	case "_EXE":
		return fExe
	case "_SYSTEMD_UNIT":
		return fUnit
	case "_HOSTNAME":
		return fHostname
	}
	return -1
}

// fields is one decoded entry: the value of each field relaygate reads.
// has marks the fields present with one value; multi those present more
// than once (a JSON array of values, or the key repeated), which relaygate
// never guesses between.
type fields struct {
	v     [nFields]string
	has   uint32
	multi uint32
}

func (f *fields) get(i int) (string, bool) { return f.v[i], f.has&(1<<i) != 0 }

var (
	errSyntax   = errors.New("not a JSON object")
	errTooDeep  = errors.New("JSON nested too deeply")
	errTrailing = errors.New("text after the JSON object")
)

// maxDepth bounds nesting: journalctl's values are at most an array of
// arrays (a repeated binary field).
const maxDepth = 16

// decodeEntry reads one line of `journalctl --output=json`: a flat JSON
// object whose values are a string, an array of byte values (a field that
// is not valid UTF-8, or has control characters journalctl will not print
// as text), null (a field of 4096 bytes or more: relaygate runs journalctl
// without --all), or an array of such values (a field the entry has more than once).
// It decodes only the fields above, skipping every other value without
// copying it, and never panics: any input is either an entry or an error.
// It is held to encoding/json's reading by FuzzDecodeEntry.
func decodeEntry(line []byte, f *fields) error {
	*f = fields{}
	d := decoder{b: line}
	d.space()
	if !d.eat('{') {
		return errSyntax
	}
	d.space()
	if d.eat('}') {
		return d.end()
	}
	var key []byte
	for {
		d.space()
		var err error
		if key, err = d.str(key[:0]); err != nil {
			return err
		}
		d.space()
		if !d.eat(':') {
			return errSyntax
		}
		d.space()
		i := fieldIndex(key)
		if i < 0 {
			if err := d.skip(0); err != nil {
				return err
			}
		} else if err := d.field(f, i); err != nil {
			return err
		}
		d.space()
		if d.eat(',') {
			continue
		}
		if d.eat('}') {
			return d.end()
		}
		return errSyntax
	}
}

type decoder struct {
	b   []byte
	i   int
	buf []byte
}

func (d *decoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) eat(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *decoder) end() error {
	d.space()
	if d.i != len(d.b) {
		return errTrailing
	}
	return nil
}

// field decodes the value of wanted field i.
func (d *decoder) field(f *fields, i int) error {
	bit := uint32(1) << i
	if f.has&bit != 0 || f.multi&bit != 0 {
		// The key again: journalctl never prints one twice.
		f.has &^= bit
		f.multi |= bit
		f.v[i] = ""
		return d.skip(0)
	}
	if d.i >= len(d.b) {
		return errSyntax
	}
	switch d.b[d.i] {
	case '"':
		s, err := d.str(d.buf[:0])
		if err != nil {
			return err
		}
		d.buf = s
		f.v[i] = string(s)
		f.has |= bit
		return nil
	case 'n':
		return d.lit("null") // too large to print: absent
	case '[':
		start := d.i
		b, isBytes, err := d.byteArray(d.buf[:0])
		if err != nil {
			return err
		}
		if isBytes {
			d.buf = b
			f.v[i] = string(b)
			f.has |= bit
			return nil
		}
		// An array of values: the field is repeated.
		d.i = start
		if err := d.skip(0); err != nil {
			return err
		}
		f.multi |= bit
		return nil
	}
	// A number, a boolean or an object: not a journal field's shape.
	if err := d.skip(0); err != nil {
		return err
	}
	f.multi |= bit // unusable either way; never guessed at
	return nil
}

// byteArray reads "[n, n, …]" of integers 0–255 into buf. isBytes is false
// (and the position undefined) when the array holds anything else; an
// empty array is an empty byte string.
func (d *decoder) byteArray(buf []byte) (_ []byte, isBytes bool, err error) {
	d.i++ // '['
	d.space()
	if d.eat(']') {
		return buf, true, nil
	}
	for {
		d.space()
		if d.i >= len(d.b) {
			return nil, false, errSyntax
		}
		c := d.b[d.i]
		if c < '0' || c > '9' {
			return nil, false, nil
		}
		n, j := 0, d.i
		for j < len(d.b) && d.b[j] >= '0' && d.b[j] <= '9' {
			if j-d.i >= 3 {
				return nil, false, nil
			}
			n = n*10 + int(d.b[j]-'0')
			j++
		}
		if n > 255 || (j-d.i > 1 && d.b[d.i] == '0') {
			return nil, false, nil
		}
		if j < len(d.b) && (d.b[j] == '.' || d.b[j] == 'e' || d.b[j] == 'E') {
			return nil, false, nil
		}
		d.i = j
		buf = append(buf, byte(n))
		d.space()
		if d.eat(',') {
			continue
		}
		if d.eat(']') {
			return buf, true, nil
		}
		return nil, false, errSyntax
	}
}

func (d *decoder) lit(s string) error {
	if len(d.b)-d.i < len(s) || string(d.b[d.i:d.i+len(s)]) != s {
		return errSyntax
	}
	d.i += len(s)
	return nil
}
