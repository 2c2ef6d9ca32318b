package parsers

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/metric"
)

func popa3dMsg(pid, text string) Message {
	return Message{Host: "mx1", Program: "popa3d", PID: pid, Text: text}
}

func TestPipelineStep(t *testing.T) {
	p := NewPipeline(NewSet(builtin()...), NewCorrelator(10, time.Minute))
	steps := []struct {
		m       Message
		outcome Outcome
		grant   string // the accepted event's address, if any
		note    string // a substring of Note
	}{
		{Message{Host: "mx1", Program: "postfix/smtpd", Text: "connect from x[192.0.2.1]"}, Unmatched, "", ""},
		{popa3dMsg("1", "Session from 192.0.2.10"), Held, "", "remembered 192.0.2.10 for mx1 popa3d[1]"},
		{popa3dMsg("1", "Authentication passed for alice"), Accepted, "192.0.2.10", "joined with 192.0.2.10"},
		// A refused address line makes the correlator forget the older one
		// of the same process, so the success line after it grants nothing.
		{popa3dMsg("2", "Session from 192.0.2.20"), Held, "", "remembered"},
		{popa3dMsg("2", "Session from client.example.net"), Refused, "", "forgot mx1 popa3d[2]"},
		{popa3dMsg("2", "Authentication passed for bob"), Held, "", "no address line seen"},
		{Message{Host: "mx1", Program: "dovecot", Text: "imap-login: Login: user=<a>, method=PLAIN, rip=192.0.2.30, lip=203.0.113.5, mpid=1, session=<S>"}, Accepted, "192.0.2.30", ""},
	}
	for i, s := range steps {
		r := p.Step(s.m, t0.Add(time.Duration(i)*time.Second))
		if r.Outcome != s.outcome {
			t.Fatalf("step %d (%q): %v (%v, %q), want %v", i, s.m.Text, r.Outcome, r.Err, r.Note, s.outcome)
		}
		if got := r.Event.Addr; s.grant != "" && (got.String() != s.grant || r.Event.Kind != Login) {
			t.Errorf("step %d: event %+v, want a login of %s", i, r.Event, s.grant)
		}
		if !strings.Contains(r.Note, s.note) {
			t.Errorf("step %d: note %q, want it to contain %q", i, r.Note, s.note)
		}
		switch r.Outcome {
		case Unmatched:
			if !errors.Is(r.Err, ErrNoMatch) || r.Parsed != (Event{}) || r.Event != (Event{}) {
				t.Errorf("step %d: unmatched with %v %+v %+v", i, r.Err, r.Parsed, r.Event)
			}
		case Refused:
			var ae *AddrError
			if !errors.As(r.Err, &ae) || r.Parsed != (Event{}) || r.Event != (Event{}) {
				t.Errorf("step %d: refused with %v %+v %+v", i, r.Err, r.Parsed, r.Event)
			}
		case Held:
			if r.Err != nil || r.Parsed.Kind == 0 || r.Event != (Event{}) || r.Note == "" {
				t.Errorf("step %d: held with %v %+v %+v %q", i, r.Err, r.Parsed, r.Event, r.Note)
			}
		case Accepted:
			if r.Err != nil || r.Parsed.Kind == 0 {
				t.Errorf("step %d: accepted with %v %+v", i, r.Err, r.Parsed)
			}
		}
	}
	want := Counts{Unmatched: 1, Refused: 1, Events: 5, Logins: 2}
	if got := p.Counts(); got != want {
		t.Errorf("Counts() = %+v, want %+v", got, want)
	}
}

// oddParser breaks the Parser contract with an error that is neither
// ErrNoMatch nor an *AddrError.
type oddParser struct{}

func (oddParser) Name() string       { return "odd" }
func (oddParser) Programs() []string { return []string{"popa3d"} }
func (oddParser) Parse(m Message) (Event, error) {
	if m.Text == "odd" {
		return Event{}, errors.New("odd")
	}
	return Event{}, ErrNoMatch
}

// TestPipelineRefusesAnyOtherError pins the choice between the three copies
// the pipeline replaced: any error that is not ErrNoMatch refuses the line
// and forgets the process, not only an *AddrError.
func TestPipelineRefusesAnyOtherError(t *testing.T) {
	p := NewPipeline(NewSet(popa3d{}, oddParser{}), NewCorrelator(10, time.Minute))
	p.Step(popa3dMsg("7", "Session from 192.0.2.10"), t0)
	r := p.Step(popa3dMsg("7", "odd"), t0)
	if r.Outcome != Refused || r.Note != "forgot mx1 popa3d[7]" {
		t.Fatalf("odd error: %v %q, want refused and forgotten", r.Outcome, r.Note)
	}
	if r := p.Step(popa3dMsg("7", "Authentication passed for a"), t0); r.Outcome != Held {
		t.Errorf("after the odd line: %v %+v, want held", r.Outcome, r.Event)
	}
}

func TestPipelineSetParsersKeepsCorrelator(t *testing.T) {
	p := NewPipeline(NewSet(popa3d{}), NewCorrelator(10, time.Minute))
	corr := p.corr
	p.Step(popa3dMsg("1", "Session from 192.0.2.10"), t0)
	next := NewSet(builtin()...)
	p.SetParsers(next)
	if p.Parsers() != next || p.corr != corr {
		t.Fatal("SetParsers did not swap only the set")
	}
	if r := p.Step(popa3dMsg("1", "Authentication passed for a"), t0.Add(time.Second)); r.Outcome != Accepted {
		t.Errorf("after a reload: %v %q, want the remembered address line joined", r.Outcome, r.Note)
	}
	if got := p.Counts().Logins; got != 1 {
		t.Errorf("logins after a reload: %d, want 1", got)
	}
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[Outcome]string{Unmatched: "unmatched", Refused: "refused", Held: "held", Accepted: "accepted", 9: "unknown"} {
		if got := o.String(); got != want {
			t.Errorf("Outcome(%d) = %q, want %q", o, got, want)
		}
	}
}

// sampleMap renders samples as "name{label=value,...}" → value.
func sampleMap(src metric.Source) map[string]float64 {
	out := map[string]float64{}
	src.Samples(func(s metric.Sample) {
		k := s.Name
		if s.Label != "" {
			k += "{" + s.Label + "=" + s.LabelValue
			if s.Label2 != "" {
				k += "," + s.Label2 + "=" + s.LabelValue2
			}
			k += "}"
		}
		if _, dup := out[k]; dup {
			k += " (twice)"
		}
		out[k] = s.Value
	})
	return out
}

func TestPipelineSamples(t *testing.T) {
	p := NewPipeline(NewSet(builtin()...), NewCorrelator(1, time.Minute))
	for _, m := range []Message{
		{Program: "sshd", Text: "x"},
		popa3dMsg("1", "Session from 192.0.2.10"),
		popa3dMsg("2", "Session from 192.0.2.11"), // evicts pid 1
		popa3dMsg("2", "Authentication passed for a"),
		popa3dMsg("3", "Session from 0.0.0.0"),
	} {
		p.Step(m, t0)
	}
	got := sampleMap(p)
	want := map[string]float64{
		"relaygate_messages_unmatched_total":                 1,
		"relaygate_logins_refused_total":                     1,
		"relaygate_logins_total":                             1,
		"relaygate_events_total{daemon=popa3d,kind=connect}": 2,
		"relaygate_events_total{daemon=popa3d,kind=auth}":    1,
		"relaygate_correlator_evictions_total":               1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("samples\n got %v\nwant %v", got, want)
	}
	keys := map[string]bool{}
	p.Samples(func(s metric.Sample) {
		keys[s.LogKey()] = true
		if s.Kind != metric.Counter || s.Help == "" {
			t.Errorf("%s: kind %v, help %q", s.Name, s.Kind, s.Help)
		}
	})
	for _, k := range []string{"messages_unmatched", "logins_refused", "logins", "events_popa3d_connect", "correlator_evictions"} {
		if !keys[k] {
			t.Errorf("no log key %q in %v", k, keys)
		}
	}
}

// TestEventSeriesFence: however many daemon names rules bring, the events
// series stay at maxEventKeys, the rest counted as daemon "other".
func TestEventSeriesFence(t *testing.T) {
	var c eventCounts
	for i := 0; i < maxEventKeys+10; i++ {
		c.add(fmt.Sprintf("d%d", i), Login)
	}
	c.add("d0", Login)
	c.add("late", Kind(77))
	snap := c.snapshot()
	if len(snap) != maxEventKeys+2 { // other/login and other/unknown
		t.Fatalf("%d series, want %d", len(snap), maxEventKeys+2)
	}
	var other, total int64
	for _, e := range snap {
		total += e.n
		if e.daemon == "other" {
			other += e.n
		}
	}
	if other != 11 || total != maxEventKeys+12 {
		t.Errorf("other %d, total %d", other, total)
	}
}

// TestPipelineConcurrentScrape is for -race: a scrape reads while the
// pipeline goroutine steps.
func TestPipelineConcurrentScrape(t *testing.T) {
	p := NewPipeline(NewSet(builtin()...), NewCorrelator(2, time.Minute))
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
				metric.Collect(p)
				_ = p.Counts()
			}
		}
	}()
	for i := 0; i < 2000; i++ {
		p.Step(popa3dMsg(fmt.Sprint(i%5), "Session from 192.0.2.1"), t0)
		p.Step(popa3dMsg(fmt.Sprint(i%3), "Authentication passed for a"), t0)
	}
	close(done)
	wg.Wait()
	if c := p.Counts(); c.Events != 4000 || c.Evicted == 0 {
		t.Errorf("counts %+v", c)
	}
}

// TestStepAdmitRefusesBeforeTheCorrelator: a two-line login needs both of
// its lines admitted. A forged address line (refused by the check) is never
// remembered, and it leaves the correlator as it was, so it can neither be
// joined with a genuine success line nor cancel a genuine address line of
// the same PID (the attack round's finding: a forger chooses the PID).
func TestStepAdmitRefusesBeforeTheCorrelator(t *testing.T) {
	p := NewPipeline(NewSet(builtin()...), NewCorrelator(10, time.Minute))
	forged := func(string) string { return "login_user" }
	var asked []string
	genuine := func(daemon string) string { asked = append(asked, daemon); return "" }

	// A forged address line alone is not remembered.
	r := p.StepAdmit(popa3dMsg("2", "Session from 192.0.2.66"), t0, forged)
	var ae *AdmitError
	if r.Outcome != Refused || !errors.As(r.Err, &ae) || ae.Reason != "login_user" || ae.Daemon != "popa3d" || r.Parsed.Daemon != "popa3d" || r.Note != "" {
		t.Fatalf("forged address line: %v %v %+v %q", r.Outcome, r.Err, r.Parsed, r.Note)
	}
	if r := p.StepAdmit(popa3dMsg("2", "Authentication passed for mallory"), t0, genuine); r.Outcome != Held {
		t.Fatalf("success line after only a forged address line: %v %+v, want held", r.Outcome, r.Event)
	}
	// A forged line between a genuine pair changes nothing.
	p.StepAdmit(popa3dMsg("3", "Session from 192.0.2.40"), t0, genuine)
	p.StepAdmit(popa3dMsg("3", "Session from 192.0.2.66"), t0, forged)
	p.StepAdmit(popa3dMsg("3", "Authentication failed for carol"), t0, forged)
	if r := p.StepAdmit(popa3dMsg("3", "Authentication passed for alice"), t0, genuine); r.Outcome != Accepted || r.Event.Addr.String() != "192.0.2.40" {
		t.Fatalf("genuine pair around forged lines: %v %+v", r.Outcome, r.Event)
	}
	// A forged success line after a genuine address line does not grant.
	p.StepAdmit(popa3dMsg("4", "Session from 192.0.2.41"), t0, genuine)
	if r := p.StepAdmit(popa3dMsg("4", "Authentication passed for bob"), t0, forged); r.Outcome != Refused {
		t.Fatalf("forged success line: %v, want refused", r.Outcome)
	}
	if r := p.StepAdmit(Message{Host: "mx1", Program: "postfix/smtpd", Text: "connect from x[192.0.2.1]"}, t0, forged); r.Outcome != Unmatched {
		t.Fatalf("unmatched line: %v", r.Outcome)
	}
	for _, d := range asked {
		if d != "popa3d" {
			t.Errorf("admit asked about %q", d)
		}
	}
	if got := p.Counts().Refused; got != 0 {
		t.Errorf("admission refusals counted as refused logins: %d", got)
	}
}
