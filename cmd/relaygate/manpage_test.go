package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"strings"
	"testing"
)

// TestManPageUpToDate keeps docs/relaygate.8 equal to what the flag
// definitions generate. After changing a flag, run:
//
//	go run ./cmd/relaygate manpage > docs/relaygate.8
func TestManPageUpToDate(t *testing.T) {
	var out bytes.Buffer
	if err := manpageCmd(&out); err != nil {
		t.Fatal(err)
	}
	// Every serve flag has its entry, with hyphens escaped for roff.
	_, _ = parseServeFlagsVisit(nil, io.Discard, func(fs *flag.FlagSet) {
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(out.String(), ".BI \"\\-"+roffEscape(f.Name)+" ") &&
				!strings.Contains(out.String(), ".B \\-"+roffEscape(f.Name)+"\n") {
				t.Errorf("flag -%s has no entry in the man page", f.Name)
			}
		})
	})
	committed, err := os.ReadFile("../../docs/relaygate.8")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), committed) {
		t.Fatal("docs/relaygate.8 is out of date: run go run ./cmd/relaygate manpage > docs/relaygate.8")
	}
}
