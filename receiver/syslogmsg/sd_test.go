package syslogmsg

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestStructuredDataSpan: the envelope keeps the SD as sent, and
// ParseStructuredData reads it back, unescaped.
func TestStructuredDataSpan(t *testing.T) {
	for _, c := range sdCases {
		if c.err {
			continue
		}
		env, err := ParseEnvelope([]byte(c.in))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if env.SD != c.sd {
			t.Errorf("%s: SD %q, want %q", c.name, env.SD, c.sd)
		}
		if _, err := ParseStructuredData(env.SD); err != nil {
			t.Errorf("%s: ParseStructuredData(%q): %v", c.name, env.SD, err)
		}
	}
}

func TestParseStructuredData(t *testing.T) {
	tests := []struct {
		in   string
		want []SDElement
		err  bool
	}{
		{in: "", want: nil},
		{in: "-", want: nil},
		{in: `[x@1 m="a\"\] imap-login: rip=203.0.113.98"]`, want: []SDElement{{ID: "x@1", Params: []SDParam{{"m", `a"] imap-login: rip=203.0.113.98`}}}}},
		{in: `[a@1 x="1" x="2"][b@1 y="\]\\"][c@1]`, want: []SDElement{
			{ID: "a@1", Params: []SDParam{{"x", "1"}, {"x", "2"}}},
			{ID: "b@1", Params: []SDParam{{"y", `]\`}}},
			{ID: "c@1"},
		}},
		{in: `[origin@32473 uid="0" p="C:\new" e=""]`, want: []SDElement{{ID: "origin@32473", Params: []SDParam{{"uid", "0"}, {"p", `C:\new`}, {"e", ""}}}}},
		{in: `[a@1 x="1"] `, err: true},     // trailing text is MSG, not SD
		{in: `[a@1 x="1"][a@1]`, err: true}, // SD-ID repeated
		{in: `[a@1 x="]"]`, err: true},
		{in: `[a@1 x=1]`, err: true},
		{in: `[a@1`, err: true},
		{in: `x`, err: true},
	}
	for _, tt := range tests {
		got, err := ParseStructuredData(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("ParseStructuredData(%q) = %+v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseStructuredData(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// TestScanSDManyElements: the repeated SD-ID check past the on-stack set.
func TestScanSDManyElements(t *testing.T) {
	var b strings.Builder
	for i := range 40 {
		b.WriteString("[e" + strconv.Itoa(i) + "]")
	}
	ok := b.String()
	if end, good := scanSD(ok, 0); !good || end != len(ok) {
		t.Fatalf("scanSD(40 distinct) = %d, %v", end, good)
	}
	for _, dup := range []string{"[e3]", "[e39]"} {
		if _, good := scanSD(ok+dup, 0); good {
			t.Errorf("scanSD accepted a repeated %s", dup)
		}
	}
}

// FuzzParseStructuredData: any string is either refused or decoded into
// elements that, written back with every '"', '\' and ']' escaped, decode
// to the same elements; and it accepts exactly what scanSD accepts whole.
func FuzzParseStructuredData(f *testing.F) {
	for _, c := range sdCases {
		f.Add(c.sd)
	}
	for _, s := range []string{`[a@1 x="\q\\\"\]"][b]`, `[a x=""]`, `[a x="]"]`, `[a][a]`, `[a x="\`, "[a x=\"\xff\"]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sd string) {
		elems, err := ParseStructuredData(sd)
		end, ok := scanSD(sd, 0)
		if whole := sd == "" || sd == "-" || (ok && end == len(sd)); whole != (err == nil) {
			t.Fatalf("%q: ParseStructuredData error %v, scanSD %d %v", sd, err, end, ok)
		}
		if err != nil || len(elems) == 0 {
			return
		}
		esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`)
		var b strings.Builder
		for _, e := range elems {
			b.WriteString("[" + e.ID)
			for _, p := range e.Params {
				b.WriteString(" " + p.Name + `="` + esc.Replace(p.Value) + `"`)
			}
			b.WriteString("]")
		}
		again, err := ParseStructuredData(b.String())
		if err != nil || !reflect.DeepEqual(again, elems) {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", sd, elems, b.String(), again, err)
		}
	})
}
