package parsers

import (
	"errors"
	"testing"
)

// FuzzSetParse checks invariants, not outputs, over (program, text) pairs
// seeded from every fixture line.
func FuzzSetParse(f *testing.F) {
	for _, path := range fixtures(f) {
		for _, fl := range readFixture(f, path) {
			f.Add(fl.Msg.Program, fl.Msg.Text)
		}
	}
	set := NewSet(Builtin()...)
	daemons := map[string]bool{}
	for _, p := range Builtin() {
		daemons[p.Name()] = true
	}
	f.Fuzz(func(t *testing.T, program, text string) {
		m := Message{Program: program, Text: text}
		ev, err := set.Parse(m)
		if err != nil {
			var ae *AddrError
			if !errors.Is(err, ErrNoMatch) && !errors.As(err, &ae) {
				t.Fatalf("Parse(%q, %q): error %T %v is neither ErrNoMatch nor *AddrError", program, text, err, err)
			}
			if ev != (Event{}) {
				t.Fatalf("Parse(%q, %q): error %v with non-zero event %+v", program, text, err, ev)
			}
			_ = err.Error()
			return
		}
		if !ev.Addr.IsValid() || ev.Addr.Is4In6() || ev.Addr.Zone() != "" {
			t.Fatalf("Parse(%q, %q): bad address %v", program, text, ev.Addr)
		}
		back, perr := ParseAddr(ev.Addr.String())
		if perr != nil || back != ev.Addr {
			t.Fatalf("Parse(%q, %q): %v does not round-trip through ParseAddr: %v, %v", program, text, ev.Addr, back, perr)
		}
		if ev.Daemon == "" || !daemons[ev.Daemon] {
			t.Fatalf("Parse(%q, %q): daemon %q", program, text, ev.Daemon)
		}
		if ev.Kind != Login {
			t.Fatalf("Parse(%q, %q): kind %v", program, text, ev.Kind)
		}
		// Purity: the same message gives the same answer.
		if again, err := set.Parse(m); err != nil || again != ev {
			t.Fatalf("Parse(%q, %q) not deterministic: %+v then %+v, %v", program, text, ev, again, err)
		}
	})
}
