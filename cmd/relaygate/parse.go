package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/relaygate/relaygate/internal/daemon"
	"github.com/relaygate/relaygate/parsers"
	"github.com/relaygate/relaygate/receiver/syslogmsg"
)

// parsedEvent is one line of `relaygate parse` output.
type parsedEvent struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line"`
	Kind    string `json:"kind"`
	Addr    string `json:"addr"`
	User    string `json:"user"`
	Daemon  string `json:"daemon"`
	Session string `json:"session,omitempty"`
}

// parseTotals is the summary parse prints to stderr.
type parseTotals struct{ lines, events, refused int }

// parseCmd is the operator's "does my log match?" tool: the same envelope
// parser, daemon parsers, rules and two-line correlation as the daemon, over
// files or stdin, one message a line.
func parseCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relaygate parse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var pf daemon.ParserConfig
	fs.StringVar(&pf.Daemons, "daemons", "all", "comma-separated built-in `daemons` to use")
	fs.StringVar(&pf.Rules, "rules", "", "YAML `file` of custom rules")
	fs.StringVar(&pf.DovecotFormat, "dovecot-log-format", "", "Dovecot's login_log_format_elements `format`, when the site changed it")
	explain := fs.Bool("explain", false, "say for every line which parser matched and what it produced, or why nothing matched")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: relaygate parse [-explain] [-daemons LIST] [-rules FILE] [-dovecot-log-format F] [FILE...]   (stdin when no FILE or FILE is -)")
		fmt.Fprintln(stderr, "Reads syslog lines (wire form with <PRI>, log-file form, or RFC 5424) and prints one JSON object per event.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	set, err := daemon.BuildParsers(pf)
	if err != nil {
		return err
	}
	p := &lineParser{
		pipe:    parsers.NewPipeline(set, daemon.NewCorrelator()),
		out:     bufio.NewWriter(stdout),
		explain: *explain,
		multi:   len(fs.Args()) > 1,
	}
	files := fs.Args()
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, name := range files {
		var err error
		if name == "-" {
			err = p.scan(stdin, "stdin")
		} else {
			var f *os.File
			if f, err = os.Open(name); err == nil {
				err = p.scan(f, name)
				f.Close()
			}
		}
		if err != nil {
			p.out.Flush()
			return err
		}
	}
	if err := p.out.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "relaygate parse: %d lines, %d events, %d logins with an address that cannot be granted\n",
		p.totals.lines, p.totals.events, p.totals.refused)
	return nil
}

// lineParser runs lines through the daemon's pipeline step.
type lineParser struct {
	pipe    *parsers.Pipeline
	out     *bufio.Writer
	explain bool
	multi   bool
	totals  parseTotals
}

func (p *lineParser) scan(r io.Reader, name string) error {
	fr := bufio.NewReaderSize(r, 64*1024)
	enc := json.NewEncoder(p.out)
	line := 0
	// Log files carry their own times, which may be years old: the
	// correlator's clock is the line count, a millisecond a line, so two-line
	// pairs far apart in a file still age out as they would live.
	start := time.Unix(0, 0)
	for {
		raw, err := fr.ReadSlice('\n')
		tooLong := false
		for errors.Is(err, bufio.ErrBufferFull) {
			// Longer than any syslog message can be: skip to its end.
			_, err = fr.ReadSlice('\n')
			raw, tooLong = nil, true
		}
		if len(raw) == 0 && !tooLong && err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read %s: %w", name, err)
		}
		line++
		p.totals.lines++
		if !p.explain && !tooLong {
			// The common case on a whole mail log: a well-formed line of a
			// program no parser handles, dropped before any string is made.
			if sp, ok := syslogmsg.FastSpans(trimEOL(raw)); ok && !p.pipe.Parsers().KnowsBytes(sp.ProgramBytes(raw)) {
				if errors.Is(err, io.EOF) {
					return nil
				}
				continue
			}
		}
		where := strconv.Itoa(line)
		if p.multi {
			where = name + ":" + where
		}
		now := start.Add(time.Duration(line) * time.Millisecond)
		if tooLong {
			p.say(where, "skipped: longer than 64 KiB")
		} else if perr := p.line(enc, raw, where, name, line, now); perr != nil {
			return perr
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

func (p *lineParser) say(where, format string, args ...any) {
	if p.explain {
		fmt.Fprintf(p.out, "%s: %s\n", where, fmt.Sprintf(format, args...))
	}
}

func (p *lineParser) line(enc *json.Encoder, raw []byte, where, name string, line int, now time.Time) error {
	env, err := syslogmsg.ParseEnvelope(raw)
	if err != nil {
		if len(strings.TrimSpace(string(raw))) == 0 {
			p.say(where, "empty line")
		} else {
			p.say(where, "no program tag could be read: %v", err)
		}
		return nil
	}
	msg := parsers.Message{Host: env.Host, Program: env.Program, PID: env.PID, Text: env.Text}
	tag := env.Program
	if env.PID != "" {
		tag += "[" + env.PID + "]"
	}
	res := p.pipe.Step(msg, now)
	switch res.Outcome {
	case parsers.Refused:
		p.totals.refused++
		if res.Note != "" {
			p.say(where, "%s: %s", tag, res.Note)
		}
		if p.explain {
			p.explainAttempts(where, tag, msg)
		}
		return nil
	case parsers.Unmatched:
		if p.explain {
			if !p.pipe.Parsers().Knows(msg.Program) {
				p.say(where, "%s: no parser handles program %q", tag, env.Program)
			} else {
				p.explainAttempts(where, tag, msg)
			}
		}
		return nil
	case parsers.Held:
		p.say(where, "%s (%s): %s", tag, res.Parsed.Daemon, res.Note)
		return nil
	}
	out := res.Event
	p.totals.events++
	pe := parsedEvent{Line: line, Kind: out.Kind.String(), User: out.User, Daemon: out.Daemon, Session: out.Session}
	if out.Addr.IsValid() {
		pe.Addr = out.Addr.String()
	}
	if p.multi {
		pe.File = name
	}
	if p.explain {
		desc := fmt.Sprintf("%s (%s): %s", tag, out.Daemon, out.Kind)
		if pe.Addr != "" {
			desc += " " + pe.Addr
		}
		if out.User != "" {
			desc += fmt.Sprintf(" user=%q", out.User)
		}
		if out.Session != "" {
			desc += fmt.Sprintf(" session=%q", out.Session)
		}
		p.say(where, "%s", desc)
		return nil
	}
	return enc.Encode(pe)
}

// explainAttempts says what each parser for the program made of the line.
func (p *lineParser) explainAttempts(where, tag string, msg parsers.Message) {
	var parts []string
	for _, a := range p.pipe.Parsers().Attempts(msg) {
		var addrErr *parsers.AddrError
		switch {
		case errors.As(a.Err, &addrErr):
			parts = append(parts, fmt.Sprintf("%s: login refused, %v", a.Parser, a.Err))
		case a.Err != nil:
			parts = append(parts, fmt.Sprintf("%s: not a login or logout line", a.Parser))
		}
	}
	p.say(where, "%s: %s", tag, strings.Join(parts, "; "))
}

func trimEOL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
