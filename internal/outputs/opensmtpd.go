package outputs

import (
	"context"
	"net/netip"
	"os"

	"github.com/relaygate/relaygate/cdbwriter"
)

// DefaultOpenSMTPDUpdate reloads the table named relaygate, as
// examples/opensmtpd-relaygate.conf declares it. smtpctl's update needs
// root: relaygate running as another user runs it through sudo (see
// docs/OTHER-MTAS.md).
const DefaultOpenSMTPDUpdate = "smtpctl update table relaygate"

// openSMTPD writes a file: table with one granted address a line (a list
// table, what "match from src <table>" compares the client with), then
// runs the update command: smtpd reads a file table only at start and
// when told to.
type openSMTPD struct {
	path   string
	update []string
}

func (o *openSMTPD) Kind() string { return "opensmtpd" }
func (o *openSMTPD) Path() string { return o.path }

// appendOpenSMTPDTable appends the table's text for addrs. Its first line
// is the comment "# @list": smtpd types a file table by its first entry
// (one with a blank or a colon, as every IPv6 address has, makes it a
// mapping) and takes an empty file for a mapping, which "from src"
// refuses ("may not be used for source lookups") at its start. A
// "# @list" comment before any entry makes it a list, empty or not, and
// whatever its first address (OpenSMTPD 6.8's table_static_priv_load), so
// no placeholder entry is needed.
func appendOpenSMTPDTable(b []byte, addrs []netip.Addr) []byte {
	b = append(b, "# @list\n# written by relaygate; replaced whole at each change\n"...)
	for _, a := range addrs {
		b = a.Unmap().AppendTo(b)
		b = append(b, '\n')
	}
	return b
}

func (o *openSMTPD) Write(ctx context.Context, addrs []netip.Addr) error {
	text := appendOpenSMTPDTable(make([]byte, 0, 64+24*len(addrs)), addrs)
	err := cdbwriter.WriteFileAtomic(o.path, 0o644, func(f *os.File) error {
		_, err := f.Write(text)
		return err
	})
	if err != nil {
		return err
	}
	// smtpctl prints "command failed" and may still exit 0.
	return run(ctx, nil, o.update, "command failed")
}
