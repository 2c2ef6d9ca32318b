package main

import (
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// manPage is relaygate(8) but for its OPTIONS, which take the place of
// the line "@OPTIONS@".
//
//go:embed manpage.roff
var manPage string

// manpageCmd prints relaygate(8) in roff. The OPTIONS section walks the
// serve flag set itself, so the page cannot drift from the flags; a test
// keeps the committed docs/relaygate.8 equal to this output. Regenerate it
// with: go run ./cmd/relaygate manpage > docs/relaygate.8
func manpageCmd(stdout io.Writer) error {
	var flags []*flag.Flag
	_, err := parseServeFlagsVisit(nil, io.Discard, func(fs *flag.FlagSet) {
		fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f) })
	})
	if !errors.Is(err, errHelp) {
		return fmt.Errorf("walk serve flags: %v", err)
	}
	head, tail, ok := strings.Cut(manPage, "@OPTIONS@\n")
	if !ok {
		return errors.New("manpage.roff has no @OPTIONS@ line")
	}
	var b strings.Builder
	b.WriteString(head)
	b.WriteString(".SH OPTIONS\nFlags of\n.BR \"relaygate serve\" .\nA flag's argument follows it as the next word or after \\(lq=\\(rq.\n")
	for _, f := range flags {
		arg, usage := flag.UnquoteUsage(f)
		if arg != "" {
			b.WriteString(".TP\n.BI \"\\-" + roffEscape(f.Name) + " \" " + roffEscape(arg) + "\n")
		} else {
			b.WriteString(".TP\n.B \\-" + roffEscape(f.Name) + "\n")
		}
		if !strings.HasSuffix(usage, ".") {
			usage += "."
		}
		b.WriteString(roffText(strings.ToUpper(usage[:1]) + usage[1:]))
		if f.DefValue != "" && f.DefValue != "false" {
			b.WriteString(" Default: \\fB" + roffEscape(f.DefValue) + "\\fR.")
		}
		b.WriteString("\n")
	}
	b.WriteString(tail)
	_, err = io.WriteString(stdout, b.String())
	return err
}

// roffEscape makes s safe inside a roff line: backslashes and hyphens
// (which roff would render as a typographic hyphen, breaking copy and
// paste of flags).
func roffEscape(s string) string {
	return strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
}

// roffText escapes s and keeps a leading dot or quote from being read as a
// request.
func roffText(s string) string {
	s = roffEscape(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}
