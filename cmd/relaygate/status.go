package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relaygate/relaygate/internal/daemon"
)

// defaultMetrics is the -metrics address the docs and the package suggest,
// and where `relaygate status` looks unless told otherwise.
const defaultMetrics = "127.0.0.1:9725"

// statusCmd asks a running daemon for its live grants, which the state file
// (relaygate list) only has as of the last save.
func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relaygate status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("metrics", defaultMetrics, "the daemon's -metrics `address`")
	asJSON := fs.Bool("json", false, "print the daemon's JSON as it is")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this `time`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	url := "http://" + *addr + "/grants"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("-metrics %q: %w", *addr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w (is relaygate running with -metrics %s?)", err, *addr)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var reply daemon.GrantsReply
	if err := json.Unmarshal(body, &reply); err != nil {
		return fmt.Errorf("GET %s: not relaygate's answer: %w", url, err)
	}
	if reply.Fleet != nil {
		fmt.Fprintln(stdout, reply.Fleet)
	}
	return printGrants(stdout, reply)
}

func printGrants(w io.Writer, r daemon.GrantsReply) error {
	grace := time.Duration(r.GraceSeconds * float64(time.Second))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tUSER\tDAEMON\tHOST\tLEFT\tSESSION")
	// sortKeys orders IPv4 before IPv6, numerically, as `relaygate list` does.
	keys := make([]string, len(r.Grants))
	byKey := make(map[string]daemon.GrantInfo, len(r.Grants))
	for i, g := range r.Grants {
		keys[i], byKey[g.Addr] = g.Addr, g
	}
	sortKeys(keys)
	for _, k := range keys {
		g := byKey[k]
		left := (time.Duration(g.LeftSeconds * float64(time.Second))).Round(time.Second).String()
		session := "-"
		if g.OpenSessions > 0 {
			// An open session holds the grant: it lasts until grace after
			// the last logout, whatever Expires says now.
			left = "logout+" + grace.Round(time.Second).String()
			session = fmt.Sprintf("open (%d)", g.OpenSessions)
			if g.SessionSince != nil {
				session += " since " + g.SessionSince.Local().Format("15:04:05")
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", dash(g.Addr), dash(g.User), dash(g.Daemon), dash(g.Host), left, session)
	}
	return tw.Flush()
}
