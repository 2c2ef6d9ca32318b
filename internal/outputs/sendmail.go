package outputs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
)

// sendmail rebuilds a hash map with sendmail's own makemap, from the text
// it is fed, so the Berkeley DB file is always the version sendmail links
// (the reason "pop-before-smtp in C" ran postmap).
//
// makemap rebuilds NAME.db in place, as sendmail expects its maps to be
// rebuilt: it holds an exclusive flock on the file from before it
// truncates it until the map is complete, and sendmail takes a shared
// flock on it when it opens the map and at each lookup (map.c
// db_map_open, db_map_lookup), so a connection waits for the rebuild (a
// tenth of a second at 100,000 grants) and never reads a half-built map.
// The map is not built under another name and renamed over NAME.db:
// sendmail checks that the file it opened is still the one it stat'ed
// ("db_map_open(...): file changed after open"), and a rename in between
// makes that connection's map fail to open, which the -o (optional) map
// reads as "not granted" (the e2e test saw it in 1 or 2 of ~1,000
// sessions during two rebuilds). A makemap that fails midway (a full
// disk, killed at the time limit) leaves the map with part of the new
// set, never an address outside it; the output fails and the rebuild is
// retried.
//
// One key per address, the form sendmail's ${client_addr} has: IPv4
// dotted, IPv6 "IPv6:" and RFC 5952 (sendmail's anynet_ntop; IPv4-mapped
// addresses are unmapped there as here). The value is OK. The rules in
// examples/sendmail-relaygate.mc look ${client_addr} up in it, as the
// popauth.m4 hack the Perl back end used does.
type sendmail struct {
	name    string // as sendmail.cf's K line gives it; the file is name.db
	makemap string // "" until found
}

// sendmailDB is the file a sendmail map name stands for.
func sendmailDB(name string) string {
	if name == "" {
		return ""
	}
	return name + ".db"
}

// makemapPaths are where makemap is looked for when it is not in PATH
// (Debian: /usr/sbin, often not in a service's PATH).
var makemapPaths = []string{"/usr/sbin/makemap", "/usr/libexec/sendmail/makemap", "/usr/lib/sendmail/makemap"}

// findMakemap returns the makemap program to run.
func findMakemap() (string, error) {
	if p, err := exec.LookPath("makemap"); err == nil {
		return p, nil
	}
	for _, p := range makemapPaths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("makemap not found in PATH or " + filepath.Dir(makemapPaths[0]) + " (Debian: apt-get install sendmail-bin)")
}

// newSendmail is the output for the map name; makemap "" is looked for
// at each write until found (a host without sendmail-bin yet makes the
// output fail, not the start).
func newSendmail(name, makemap string) *sendmail {
	return &sendmail{name: name, makemap: makemap}
}

func (o *sendmail) Kind() string { return "sendmail" }
func (o *sendmail) Path() string { return sendmailDB(o.name) }

// appendSendmailText appends makemap's input for addrs.
func appendSendmailText(b []byte, addrs []netip.Addr) []byte {
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is6() {
			b = append(b, "IPv6:"...)
		}
		b = a.AppendTo(b)
		b = append(b, "\tOK\n"...)
	}
	return b
}

func (o *sendmail) Write(ctx context.Context, addrs []netip.Addr) error {
	if o.makemap == "" {
		mm, err := findMakemap()
		if err != nil {
			return fmt.Errorf("-sendmail-map %s: %w", o.name, err)
		}
		o.makemap = mm
	}
	db := o.Path()
	text := appendSendmailText(make([]byte, 0, 24*len(addrs)), addrs)
	if err := run(ctx, bytes.NewReader(text), []string{o.makemap, "hash", o.name}); err != nil {
		return err
	}
	f, err := os.Open(db)
	if err != nil {
		return err
	}
	// makemap makes a new file 0640 or as its umask says; sendmail runs as
	// root, but makemap -u and praliases as other users read it too.
	if err = readableAndSynced(f); err != nil {
		return err
	}
	return syncDir(filepath.Dir(db))
}

// syncDir makes a new file in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return nil // the file is in place; only durability is unknown
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// readableAndSynced makes a file an MTA's own tool built readable by
// everyone (mode 0644), syncs it and closes it: the tools make their files
// as their umask says, and the MTA may read them as another user.
func readableAndSynced(f *os.File) error {
	err := f.Chmod(0o644)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
