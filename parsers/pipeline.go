package parsers

import (
	"errors"
	"time"
)

// Outcome is what the pipeline made of one message.
type Outcome uint8

const (
	// Unmatched: no parser recognised the message (Err is "no match").
	// Most of any mail log ends here; it is counted, never logged.
	Unmatched Outcome = iota
	// Refused: a parser recognised the message but refused it (an
	// *AddrError; the correlator forgot the process), or StepAdmit's
	// check did (an *AdmitError; the correlator is left as it was).
	Refused
	// Held: recognised, but nothing for the grant table yet (a two-line
	// daemon's address or failure line, an Auth without its address line);
	// Note says why.
	Held
	// Accepted: Event is a Login or Logout for the grant table.
	Accepted
)

func (o Outcome) String() string {
	switch o {
	case Unmatched:
		return "unmatched"
	case Refused:
		return "refused"
	case Held:
		return "held"
	case Accepted:
		return "accepted"
	}
	return "unknown"
}

// Result is one message's way through the pipeline.
type Result struct {
	Outcome Outcome
	Parsed  Event  // the parser's own event, before the correlator (set when Held, Accepted, or refused by admission)
	Event   Event  // what the grant table gets, when Outcome is Accepted
	Err     error  // the parse error, when Unmatched or Refused
	Note    string // the correlator's note (Held; Accepted and Refused when it had something to say)
}

// Pipeline is the one step between a message and the grant table: parse,
// then either forget the process in the correlator (a refused line) or feed
// the event to it. The daemon, `relaygate parse` and the golden tests all
// run messages through Step, so they cannot drift apart.
//
// Step and SetParsers belong to one goroutine, like the Correlator; Samples
// and Counts may be called from any goroutine at any time.
type Pipeline struct {
	set   *Set
	corr  *Correlator
	stats stats
}

// NewPipeline returns a pipeline over set and corr, with its counters at zero.
func NewPipeline(set *Set, corr *Correlator) *Pipeline {
	return &Pipeline{set: set, corr: corr}
}

// Step runs msg, received at at, through the parsers and the correlator.
//
// Every error that is not ErrNoMatch refuses the message and makes the
// correlator forget the process, not only an *AddrError: the Set itself
// treats any such error as "recognised", and forgetting can never grant,
// while keeping an address line after its process's own line was refused
// could join a reused PID with a stale address. Parsers only return
// ErrNoMatch or an *AddrError (FuzzSetParse checks it), so for them this is
// the same as refusing on *AddrError alone, which the daemon and `relaygate
// parse` did before this step replaced their copies (the golden tests'
// copy already refused on any error; their output is unchanged).
func (p *Pipeline) Step(msg Message, at time.Time) Result {
	return p.StepAdmit(msg, at, nil)
}

// AdmitError is a recognised message the caller's admission check refused
// (its writer was not the mail daemon, say); Reason is the check's word.
type AdmitError struct {
	Daemon, Reason string
}

func (e *AdmitError) Error() string {
	return "not admitted for " + e.Daemon + ": " + e.Reason
}

// StepAdmit is Step with an admission check: admit, if not nil, is asked
// about every message a parser recognised, before the correlator sees it,
// and returns "" to admit or a reason to refuse. A refused message never
// reaches the correlator, so a two-line login needs both of its lines
// admitted (a forged address line is never remembered, so it can't be
// joined with a genuine success line of the same PID), and it leaves the
// correlator as it was: the PID in a line is whatever its writer chose, so
// a forger's refused line must not make the correlator forget a genuine
// address line and cancel that user's login. Refusals by admit are not
// counted as refused logins; the caller counts them by its reason.
func (p *Pipeline) StepAdmit(msg Message, at time.Time, admit func(daemon string) string) Result {
	ev, err := p.set.parse(msg)
	if err != nil {
		if errors.Is(err, ErrNoMatch) {
			p.stats.unmatched.Add(1)
			return Result{Outcome: Unmatched, Err: err}
		}
		p.stats.refused.Add(1)
		return Result{Outcome: Refused, Err: err, Note: p.corr.forget(msg)}
	}
	p.stats.events.add(ev.Daemon, ev.Kind)
	if admit != nil {
		if reason := admit(ev.Daemon); reason != "" {
			return Result{Outcome: Refused, Parsed: ev, Err: &AdmitError{Daemon: ev.Daemon, Reason: reason}}
		}
	}
	out, ok, note := p.corr.feed(msg, ev, at)
	if !ok || (out.Kind != Login && out.Kind != Logout) {
		return Result{Outcome: Held, Parsed: ev, Note: note}
	}
	if out.Kind == Login {
		p.stats.logins.Add(1)
	}
	return Result{Outcome: Accepted, Parsed: ev, Event: out, Note: note}
}

// SetParsers replaces the parser set, for a reload; the correlator and the
// counters stay.
func (p *Pipeline) SetParsers(set *Set) { p.set = set }

// Parsers returns the parser set Step uses.
func (p *Pipeline) Parsers() *Set { return p.set }
