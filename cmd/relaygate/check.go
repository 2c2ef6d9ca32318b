package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/relaygate/relaygate/internal/fleet"
	"github.com/relaygate/relaygate/internal/origincheck"
	"github.com/relaygate/relaygate/internal/outputs"
	"github.com/relaygate/relaygate/internal/postfix"
)

// checkCmd prints one line per check of the map directory, Postfix's setup
// and the origin of login lines (with serve's flags after "--"), each
// problem with its fix, and fails if there is any problem.
func checkCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relaygate check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o postfix.CheckOptions
	fs.StringVar(&o.MapPath, "map", defaultMap, "the cdb map `file` relaygate serve -map will write")
	fs.StringVar(&o.PostfixConfig, "postfix-config", "", "Postfix configuration `directory` to check (postconf -c); default Postfix's own")
	fs.StringVar(&o.RunAs, "user", "", "also check that this `user` (the one relaygate will run as) can write the map directory")
	rsyslogConf := fs.String("rsyslog-config", origincheck.RsyslogConf, "rsyslog's main configuration `file`, read to check that what it forwards to relaygate carries each line's origin; empty skips it")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: relaygate check [-map FILE] [-postfix-config DIR] [-user NAME] [-rsyslog-config FILE] [-- SERVE-FLAGS]")
		fmt.Fprintln(stderr, "Checks that relaygate can write the map, that Postfix consults it in time, and whether login lines' origin can be verified; prints a fix for each problem. After --, the flags relaygate serve runs with (their -map and -postfix-config unless given here).")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sc, err := parseServeFlags(fs.Args(), stderr)
	if err != nil {
		return fmt.Errorf("serve flags after --: %w", err)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if !given["map"] {
		o.MapPath = sc.MapPath
	}
	if !given["postfix-config"] {
		o.PostfixConfig = sc.PostfixConfig
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
	findings := append(postfix.Check(ctx, o), origincheck.Check(origincheck.SetupOf(sc.Config), *rsyslogConf)...)
	findings = append(findings, fleet.Check(ctx, sc.Fleet)...)
	for _, f := range append(findings, outputs.Check(sc.Outputs, outputs.CheckOptions{MapPath: o.MapPath, RunAs: o.RunAs})...) {
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
