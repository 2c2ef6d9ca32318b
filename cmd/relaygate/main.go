// Command relaygate gives POP/IMAP-before-SMTP relaying to Postfix: it
// receives the mail servers' syslog, recognises successful logins, and
// publishes each client address for a grace period in a cdb map that Postfix
// reads with check_client_access.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

const usage = `usage: relaygate [serve] [flags]      run the daemon (default)
       relaygate parse [FILE...]      print the login events found in syslog lines
       relaygate list [-map PATH] [-state PATH]
                                      print the grants in the map (from the state file)
       relaygate status [-metrics ADDR]  print the running daemon's live grants
       relaygate check [-map PATH] [-postfix-config DIR] [-user NAME] [-- SERVE-FLAGS]
                                      check the map directory, Postfix's setup and origin
       relaygate version

Run "relaygate serve -h" for the daemon's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errUsage and errHelp are returned after the flag package printed usage.
var (
	errUsage = errors.New("usage")
	errHelp  = errors.New("help")
)

// parseFlags parses a subcommand's flags; -h becomes errHelp and any other
// flag error (already printed by the flag set) errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return errUsage
	}
	return nil
}

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, stderr)
	case "parse":
		err = parseCmd(args, stdin, stdout, stderr)
	case "list":
		err = listCmd(args, stdout, stderr)
	case "status":
		err = statusCmd(ctx, args, stdout, stderr)
	case "check":
		err = checkCmd(ctx, args, stdout, stderr)
	case "manpage":
		// Hidden: regenerates docs/relaygate.8 from the serve flags.
		err = manpageCmd(stdout)
	case "version":
		fmt.Fprintln(stdout, "relaygate", version())
	case "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "relaygate: unknown command %q\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "relaygate %s: %v\n", cmd, err)
		return 1
	}
}

func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}
