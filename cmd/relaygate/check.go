package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/relaygate/relaygate/internal/postfix"
)

// checkCmd prints one line per check of the map directory and Postfix's
// setup, each problem with its fix, and fails if there is any problem.
func checkCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relaygate check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o postfix.CheckOptions
	fs.StringVar(&o.MapPath, "map", defaultMap, "the cdb map `file` relaygate serve -map will write")
	fs.StringVar(&o.PostfixConfig, "postfix-config", "", "Postfix configuration `directory` to check (postconf -c); default Postfix's own")
	fs.StringVar(&o.RunAs, "user", "", "also check that this `user` (the one relaygate will run as) can write the map directory")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: relaygate check [-map FILE] [-postfix-config DIR] [-user NAME]")
		fmt.Fprintln(stderr, "Checks that relaygate can write the map and that Postfix consults it in time; prints a fix for each problem.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if !strings.HasSuffix(o.MapPath, ".cdb") {
		o.MapPath += ".cdb"
	}
	abs, err := filepath.Abs(o.MapPath)
	if err != nil {
		return fmt.Errorf("-map %s: %w", o.MapPath, err)
	}
	o.MapPath = abs
	problems := 0
	for _, f := range postfix.Check(ctx, o) {
		fmt.Fprintln(stdout, f)
		if f.Problem {
			problems++
		}
	}
	if problems > 0 {
		return fmt.Errorf("%d problem(s) found", problems)
	}
	return nil
}
