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
	"unicode"
	"unicode/utf8"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/internal/grants"
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
	saved, err := cdbwriter.LoadState(*statePath)
	var damage *cdbwriter.StateDamage
	if err != nil && !errors.As(err, &damage) {
		return err
	}
	if damage != nil {
		fmt.Fprintln(stderr, "warning:", damage)
	}
	byAddr := make(map[string]grants.Grant, len(saved))
	for _, g := range saved {
		byAddr[cdbwriter.Key(g.Addr)] = g
	}
	if err := writeList(stdout, keys, byAddr, time.Now()); err != nil {
		return err
	}
	if _, err := os.Stat(*statePath); err != nil {
		fmt.Fprintf(stderr, "note: no state file at %s; expiry times unknown\n", *statePath)
	}
	return nil
}

// writeList prints the table of list: one row per map key, joined with
// its grant from the state file if there is one.
func writeList(w io.Writer, keys []string, byAddr map[string]grants.Grant, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tEXPIRES\tLEFT\tUSER\tDAEMON\tHOST")
	sortKeys(keys)
	for _, k := range keys {
		g, ok := byAddr[k]
		if !ok {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\n", dash(k))
			continue
		}
		left := g.Expires.Sub(now).Round(time.Second)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", dash(k), g.Expires.Local().Format(time.RFC3339), left,
			dash(g.User), dash(g.Daemon), dash(g.Host))
	}
	return tw.Flush()
}

// dash makes a sender-controlled string (user name, HOSTNAME, daemon, an
// address read from a file) safe for one table cell: "-" when empty,
// otherwise with every character a terminal would act on or not show
// escaped, and cut to maxCell characters. A user name is whatever the
// sender wrote, so it may be 3,000 characters wide, or hold ESC sequences
// that move the cursor, retitle the window or hide the rows after it.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return cell(s, maxCell)
}

// maxCell is the widest a text column gets, in characters: room for a
// long e-mail address or host name, without one row widening the table.
const maxCell = 40

// cell escapes s for a terminal and cuts it at a character boundary to at
// most width characters, the last one "…" if anything was cut. Escapes
// are never split: a cut escape would read as different text.
func cell(s string, width int) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		var piece string
		switch {
		case r == utf8.RuneError && size <= 1:
			piece = fmt.Sprintf(`\x%02x`, s[i])
		case unicode.IsPrint(r):
			piece = string(r)
		case r < 0x80:
			piece = fmt.Sprintf(`\x%02x`, r)
		case r <= 0xFFFF:
			piece = fmt.Sprintf(`\u%04x`, r)
		default:
			piece = fmt.Sprintf(`\U%08x`, r)
		}
		i += size
		w := utf8.RuneCountInString(piece)
		// Room for the piece, and for "…" unless the piece ends s.
		if n+w > width || (i < len(s) && n+w == width) {
			b.WriteString("…")
			return b.String()
		}
		b.WriteString(piece)
		n += w
	}
	return b.String()
}

func sortKeys(keys []string) {
	parsed := make(map[string]netip.Addr, len(keys))
	for _, k := range keys {
		parsed[k], _ = netip.ParseAddr(k)
	}
	slices.SortFunc(keys, func(a, b string) int { return parsed[a].Compare(parsed[b]) })
}
