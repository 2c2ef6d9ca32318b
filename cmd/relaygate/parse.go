package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/relaygate/relaygate/parsers"
	"github.com/relaygate/relaygate/receiver"
)

// parsedEvent is one line of `relaygate parse` output.
type parsedEvent struct {
	File   string `json:"file,omitempty"`
	Line   int    `json:"line"`
	Kind   string `json:"kind"`
	Addr   string `json:"addr"`
	User   string `json:"user"`
	Daemon string `json:"daemon"`
}

// parseCmd is the operator's "does my log match?" tool: the same envelope
// and daemon parsers as the daemon, over files or stdin, one message a line.
func parseCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relaygate parse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: relaygate parse [FILE...]   (stdin when no FILE or FILE is -)")
		fmt.Fprintln(stderr, "Reads syslog lines (wire form with <PRI>, log-file form, or RFC 5424) and prints one JSON object per login event.")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return errUsage
	}
	set := parsers.NewSet(parsers.Builtin()...)
	out := bufio.NewWriter(stdout)
	enc := json.NewEncoder(out)
	var totals struct{ lines, events, refused int }
	scan := func(r io.Reader, name string) error {
		fr := bufio.NewReaderSize(r, 64*1024)
		line := 0
		for {
			raw, err := fr.ReadSlice('\n')
			for errors.Is(err, bufio.ErrBufferFull) {
				// Longer than any syslog message can be: skip to its end.
				_, err = fr.ReadSlice('\n')
				raw = nil
			}
			if len(raw) == 0 && err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return fmt.Errorf("read %s: %w", name, err)
			}
			line++
			totals.lines++
			env, perr := receiver.ParseEnvelope(raw)
			if perr == nil {
				ev, err := set.Parse(parsers.Message{Host: env.Host, Program: env.Program, PID: env.PID, Text: env.Text})
				var addrErr *parsers.AddrError
				switch {
				case err == nil:
					totals.events++
					pe := parsedEvent{Line: line, Kind: ev.Kind.String(), Addr: ev.Addr.String(), User: ev.User, Daemon: ev.Daemon}
					if len(fs.Args()) > 1 {
						pe.File = name
					}
					if err := enc.Encode(pe); err != nil {
						return err
					}
				case errors.As(err, &addrErr):
					totals.refused++
				}
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
		}
	}
	files := fs.Args()
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, name := range files {
		var err error
		if name == "-" {
			err = scan(stdin, "stdin")
		} else {
			var f *os.File
			if f, err = os.Open(name); err == nil {
				err = scan(f, name)
				f.Close()
			}
		}
		if err != nil {
			out.Flush()
			return err
		}
	}
	if err := out.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "relaygate parse: %d lines, %d events, %d logins with an address that cannot be granted\n",
		totals.lines, totals.events, totals.refused)
	return nil
}
