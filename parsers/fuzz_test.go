package parsers

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// checkAddr fails unless a is an address the grant table could hold: valid,
// unmapped, without a zone, and unchanged by a round trip through parseAddr.
func checkAddr(t *testing.T, what string, a netip.Addr) {
	t.Helper()
	if !a.IsValid() || a.Is4In6() || a.Zone() != "" {
		t.Fatalf("%s: bad address %v", what, a)
	}
	back, err := parseAddr(a.String())
	if err != nil || back != a {
		t.Fatalf("%s: %v does not round-trip through parseAddr: %v, %v", what, a, back, err)
	}
}

// hasRipElement reports whether text has an element "rip=X" (after ", " or
// ": ", before ", " or the end) with X an address that grants a.
func hasRipElement(text string, a netip.Addr) bool {
	for i := 0; ; {
		j := strings.Index(text[i:], "rip=")
		if j < 0 {
			return false
		}
		start := i + j
		i = start + 1
		if start < 2 || (text[start-2:start] != ", " && text[start-2:start] != ": ") {
			continue
		}
		val, _, _ := strings.Cut(text[start+len("rip="):], ", ")
		if b, err := parseAddr(val); err == nil && b == a {
			return true
		}
	}
}

func builtinDaemons() map[string]bool {
	daemons := map[string]bool{}
	for _, p := range builtin() {
		daemons[p.Name()] = true
	}
	return daemons
}

// FuzzSetParse checks invariants, not outputs, over (program, text) pairs
// seeded from every fixture line.
func FuzzSetParse(f *testing.F) {
	for _, path := range fixtures(f) {
		for _, fl := range readFixture(f, path) {
			f.Add(fl.Msg.Program, fl.Msg.Text)
		}
	}
	set := NewSet(builtin()...)
	daemons := builtinDaemons()
	f.Fuzz(func(t *testing.T, program, text string) {
		m := Message{Program: program, Text: text}
		ev, err := set.parse(m)
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
		what := "Parse(" + program + ", " + text + ")"
		switch ev.Kind {
		case Login, Connect:
			checkAddr(t, what, ev.Addr)
		case Logout:
			if ev.Addr.IsValid() {
				checkAddr(t, what, ev.Addr)
			}
		case Auth, Fail:
			if ev.Addr.IsValid() {
				t.Fatalf("%s: %v event with an address %v", what, ev.Kind, ev.Addr)
			}
		default:
			t.Fatalf("%s: kind %v", what, ev.Kind)
		}
		if ev.Daemon == "" || !daemons[ev.Daemon] {
			t.Fatalf("%s: daemon %q", what, ev.Daemon)
		}
		if ev.Kind == Login && ev.Daemon == "dovecot" && !hasRipElement(text, ev.Addr) {
			t.Fatalf("%s: granted %v, which is no rip element of the line", what, ev.Addr)
		}
		// Purity: the same message gives the same answer.
		if again, err := set.parse(m); err != nil || again != ev {
			t.Fatalf("%s not deterministic: %+v then %+v, %v", what, ev, again, err)
		}
	})
}

// Pipeline fuzzing settings: a small table, so that eviction happens, and a
// short age limit that the "@" lines below can exceed.
const (
	fuzzCap    = 4
	fuzzMaxAge = 5 * time.Minute
)

// pipelineSeed renders fixture lines in FuzzPipeline's input format.
func pipelineSeed(lines []fixtureLine) string {
	var b strings.Builder
	for _, fl := range lines {
		b.WriteString(fl.Msg.Host)
		b.WriteByte('\t')
		b.WriteString(fl.Msg.Program)
		b.WriteByte('\t')
		b.WriteString(fl.Msg.PID)
		b.WriteByte('\t')
		b.WriteString(fl.Msg.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

// FuzzPipeline feeds a sequence of messages through a Pipeline, as the
// daemon does, and checks invariants plus a reference
// model of the correlation. The input is split into lines; a line is
// "host\tprogram\tpid\ttext" (missing fields are empty), or "@N" to advance
// the clock by N minutes. Every other line advances it by one second.
func FuzzPipeline(f *testing.F) {
	for _, path := range fixtures(f) {
		f.Add(pipelineSeed(readFixture(f, path)))
	}
	f.Add("mx1\tpopa3d\t1\tSession from 192.0.2.1\n@6\nmx1\tpopa3d\t1\tAuthentication passed for a\n")
	f.Add("h\tspop3d\t1\tconnect from 192.0.2.1\nh\tspop3d\t2\tconnect from 192.0.2.2\n" +
		"h\tspop3d\t3\tconnect from 192.0.2.3\nh\tspop3d\t4\tconnect from 192.0.2.4\n" +
		"h\tspop3d\t5\tconnect from 192.0.2.5\nh\tspop3d\t1\tuser a authenticated\nh\tspop3d\t5\tuser b authenticated\n")

	set := NewSet(builtin()...)
	daemons := builtinDaemons()
	f.Fuzz(func(t *testing.T, input string) {
		p := NewPipeline(set, NewCorrelator(fuzzCap, fuzzMaxAge))
		c := p.corr
		now := fixtureEpoch
		// model is the correlation without bounds: the last address line of
		// each process not yet ended by another event.
		model := map[corrKey]netip.Addr{}
		var evicted int64
		for _, line := range strings.Split(input, "\n") {
			if n, ok := strings.CutPrefix(line, "@"); ok && len(n) <= 4 {
				if mins, err := strconv.Atoi(n); err == nil && mins >= 0 {
					now = now.Add(time.Duration(mins) * time.Minute)
					continue
				}
			}
			now = now.Add(time.Second)
			var m Message
			fields := strings.SplitN(line, "\t", 4)
			for i, p := range []*string{&m.Host, &m.Program, &m.PID, &m.Text} {
				if i < len(fields) {
					*p = fields[i]
				}
			}
			key := corrKey{host: m.Host, program: normalizeProgram(m.Program), pid: m.PID}

			r := p.Step(m, now)
			switch r.Outcome {
			case Unmatched:
				continue
			case Refused:
				delete(model, key)
				continue
			}
			ev, out, ok, note := r.Parsed, r.Event, r.Outcome == Accepted, r.Note
			what := "Step(" + line + ")"
			if ok {
				switch out.Kind {
				case Login:
					checkAddr(t, what, out.Addr)
					if out.Daemon == "" || !daemons[out.Daemon] {
						t.Fatalf("%s: login with daemon %q", what, out.Daemon)
					}
				case Logout:
					if out.Addr.IsValid() {
						checkAddr(t, what, out.Addr)
					}
				default:
					t.Fatalf("%s: ok with kind %v", what, out.Kind)
				}
			} else if note == "" {
				t.Fatalf("%s: nothing to act on, and no note", what)
			}
			switch ev.Kind {
			case Login, Logout:
				if !ok || out != ev {
					t.Fatalf("%s: %v not passed through: %+v, %v", what, ev.Kind, out, ok)
				}
				if key.pid != "" {
					delete(model, key)
				}
			case Connect:
				if ok {
					t.Fatalf("%s: a Connect produced %+v", what, out)
				}
				if key.pid != "" {
					model[key] = ev.Addr
				}
			case Auth:
				want, remembered := model[key]
				delete(model, key)
				if ok {
					// Only ever the address this process logged: eviction
					// and expiry may lose it, never replace it.
					if !remembered || out.Addr != want {
						t.Fatalf("%s: granted %v, the process's address line said %v (%v)", what, out.Addr, want, remembered)
					}
					if out.User != ev.User || out.Daemon != ev.Daemon {
						t.Fatalf("%s: joined event %+v does not carry the Auth's %+v", what, out, ev)
					}
				}
			case Fail:
				if ok {
					t.Fatalf("%s: a Fail produced %+v", what, out)
				}
				delete(model, key)
			}
			if c.pending() > fuzzCap || c.pending() > len(model) {
				t.Fatalf("%s: Len %d, cap %d, model %d", what, c.pending(), fuzzCap, len(model))
			}
			if c.evictions() < evicted {
				t.Fatalf("%s: Evicted went down from %d to %d", what, evicted, c.evictions())
			}
			evicted = c.evictions()
		}
	})
}
