package journal

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeEntry(t *testing.T) {
	cases := []struct {
		name  string
		line  string
		want  map[int]string
		multi []int
		err   bool
	}{
		{name: "journalctl's shape",
			line: `{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1796589328572755","MESSAGE":"imap-login: Login: user=<a>, rip=192.0.2.1","SYSLOG_IDENTIFIER":"dovecot","_UID":"0","_PID":"9","_COMM":"log","OTHER":["x",[1,2]],"_EXE":"/usr/lib/dovecot/log"}`,
			want: map[int]string{fCursor: "s=1;i=2", fRealtime: "1796589328572755", fMessage: "imap-login: Login: user=<a>, rip=192.0.2.1",
				fIdentifier: "dovecot", fUID: "0", fPID: "9", fComm: "log", fExe: "/usr/lib/dovecot/log"}},
		{name: "byte array message", line: `{"MESSAGE":[255,254,32,98,97,100]}`, want: map[int]string{fMessage: "\xff\xfe bad"}},
		{name: "empty byte array", line: `{"MESSAGE":[]}`, want: map[int]string{fMessage: ""}},
		{name: "escapes", line: `{"MESSAGE":"a\"b\\c\/d\n\u00e9\ud83d\ude00\ud800x"}`, want: map[int]string{fMessage: "a\"b\\c/d\né😀\uFFFDx"}},
		{name: "null is absent", line: `{"MESSAGE":null,"_UID":"0"}`, want: map[int]string{fUID: "0"}},
		{name: "repeated field as array", line: `{"MESSAGE":["one","two"],"_UID":"0"}`, want: map[int]string{fUID: "0"}, multi: []int{fMessage}},
		{name: "repeated binary field", line: `{"MESSAGE":[[1,2],"x"]}`, want: map[int]string{}, multi: []int{fMessage}},
		{name: "key twice", line: `{"_UID":"0","_UID":"1000"}`, want: map[int]string{}, multi: []int{fUID}},
		{name: "number value", line: `{"_UID":0}`, want: map[int]string{}, multi: []int{fUID}},
		{name: "byte over 255", line: `{"MESSAGE":[256]}`, want: map[int]string{}, multi: []int{fMessage}},
		{name: "spaces", line: " { \"_UID\" : \"7\" , \"x\" : { \"a\" : [ true , false , null , -1.5e3 ] } } ", want: map[int]string{fUID: "7"}},
		{name: "empty object", line: `{}`, want: map[int]string{}},
		{name: "garbage", line: `not json`, err: true},
		{name: "cut short", line: `{"MESSAGE":"abc`, err: true},
		{name: "trailing", line: `{"MESSAGE":"abc"} x`, err: true},
		{name: "control in string", line: "{\"MESSAGE\":\"a\tb\"}", err: true},
		{name: "bad escape", line: `{"MESSAGE":"\x"}`, err: true},
		{name: "deep", line: `{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, err: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var f fields
			err := decodeEntry([]byte(c.line), &f)
			if (err != nil) != c.err {
				t.Fatalf("err = %v, want error %v", err, c.err)
			}
			if c.err {
				return
			}
			for i := range nFields {
				v, ok := f.get(i)
				w, want := c.want[i]
				if ok != want || v != w {
					t.Errorf("%s = %q (present %v), want %q (present %v)", fieldNames[i], v, ok, w, want)
				}
			}
			var multi uint32
			for _, i := range c.multi {
				multi |= 1 << i
			}
			if f.multi != multi {
				t.Errorf("multi = %b, want %b", f.multi, multi)
			}
		})
	}
}

// FuzzDecodeEntry holds decodeEntry to encoding/json: whatever it accepts
// is a JSON object, and every field it reads as one value is what
// encoding/json reads there (a string, or an array of bytes).
func FuzzDecodeEntry(f *testing.F) {
	for _, s := range []string{
		`{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1","MESSAGE":"imap-login: Login","SYSLOG_IDENTIFIER":"dovecot","_UID":"0"}`,
		`{"MESSAGE":[255,254,32],"_UID":["0","1"]}`,
		`{"MESSAGE":"\u00e9\ud83d\ude00\ud800","x":{"y":[1,2.5e3,-0,true,null]}}`,
		`{"MESSAGE":null}`, `{}`, `[]`, `{"a":"b"`, `{"MESSAGE":[0,01]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var got fields
		err := decodeEntry(line, &got)
		var m map[string]json.RawMessage
		jerr := json.Unmarshal(line, &m)
		if err == nil && jerr != nil && utf8.Valid(line) {
			// encoding/json is the reference for valid input; our reader
			// bounds nesting, which it does not.
			t.Fatalf("decodeEntry accepted what encoding/json refuses (%v): %q", jerr, line)
		}
		if err != nil {
			if jerr == nil && !errorsIsDepth(err) && utf8.Valid(line) {
				t.Fatalf("decodeEntry refused (%v) what encoding/json reads: %q", err, line)
			}
			return
		}
		for i := range nFields {
			v, ok := got.get(i)
			if !ok {
				continue
			}
			raw := m[fieldNames[i]]
			var s string
			if json.Unmarshal(raw, &s) == nil {
				if s != v {
					t.Fatalf("%s = %q, encoding/json %q: %q", fieldNames[i], v, s, line)
				}
				continue
			}
			var b []int
			if json.Unmarshal(raw, &b) != nil {
				t.Fatalf("%s read as one value from %s: %q", fieldNames[i], raw, line)
			}
			if len(b) != len(v) {
				t.Fatalf("%s = %q, encoding/json %v", fieldNames[i], v, b)
			}
			for j := range b {
				if b[j] != int(v[j]) {
					t.Fatalf("%s = %q, encoding/json %v", fieldNames[i], v, b)
				}
			}
		}
	})
}

func errorsIsDepth(err error) bool { return err == errTooDeep }
