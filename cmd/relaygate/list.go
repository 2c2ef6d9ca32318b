package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relaygate/relaygate/cdbwriter"
)

// listCmd prints what Postfix sees (the map) joined with what relaygate
// knows about each entry (the state file), so an operator can tell why an
// address may or may not relay.
func listCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relaygate list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mapPath := fs.String("map", defaultMap, "cdb map `file`")
	statePath := fs.String("state", "", "state `file` (default: the map's name with .state)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !strings.HasSuffix(*mapPath, ".cdb") {
		*mapPath += ".cdb"
	}
	if *statePath == "" {
		*statePath = strings.TrimSuffix(*mapPath, ".cdb") + ".state"
	}
	keys, err := cdbwriter.ReadMap(*mapPath)
	if err != nil {
		return err
	}
	grants, err := cdbwriter.LoadState(*statePath)
	var damage *cdbwriter.StateDamage
	if err != nil && !errors.As(err, &damage) {
		return err
	}
	if damage != nil {
		fmt.Fprintln(stderr, "warning:", damage)
	}
	byAddr := make(map[string]cdbwriter.Grant, len(grants))
	for _, g := range grants {
		byAddr[cdbwriter.Key(g.Addr)] = g
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tEXPIRES\tLEFT\tUSER\tDAEMON\tHOST")
	sortKeys(keys)
	for _, k := range keys {
		g, ok := byAddr[k]
		if !ok {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\n", k)
			continue
		}
		left := g.Expires.Sub(now).Round(time.Second)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k, g.Expires.Local().Format(time.RFC3339), left,
			dash(g.User), dash(g.Daemon), dash(g.Host))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if _, err := os.Stat(*statePath); err != nil {
		fmt.Fprintf(stderr, "note: no state file at %s; expiry times unknown\n", *statePath)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sortKeys(keys []string) {
	parsed := make(map[string]netip.Addr, len(keys))
	for _, k := range keys {
		parsed[k], _ = netip.ParseAddr(k)
	}
	slices.SortFunc(keys, func(a, b string) int { return parsed[a].Compare(parsed[b]) })
}
