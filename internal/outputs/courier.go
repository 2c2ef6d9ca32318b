package outputs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/internal/metric"
)

// DefaultCourierRestart makes couriertcpd reopen its access file: Debian's
// esmtpd script sends it a SIGHUP ("esmtpd restart" stops nothing; it
// runs couriertcpd -pid=$PIDFILE -restart). couriertcpd opens the file at
// its start and again only after a SIGHUP, so without it a replaced file
// is never read.
const DefaultCourierRestart = "esmtpd restart"

// courier writes the access file couriertcpd -access reads for Courier's
// esmtpd (Debian: /etc/courier/smtpaccess.dat, ACCESSFILE in
// /etc/courier/esmtpd): a GDBM file built by Courier's own makedat, so
// the database library is always the one couriertcpd links, from the
// site's rules (-courier-smtpaccess-static, the text makesmtpaccess
// compiles) and one record per granted address.
//
// makedat builds the file under a temporary name, which is then fsynced
// and renamed over the access file (makedat itself renames into place
// too); couriertcpd keeps reading the file it opened, complete, until the
// restart command's SIGHUP makes it reopen the file at its next
// connection. So a connection never reads a partial file, and each one
// reads either the old set or the new.
//
// A grant never overrides the site's rules: couriertcpd reads only the
// most specific record (tcpd.c: the address, then the address cut at its
// last "." or ":" again and again, then "*"), so a grant's record for an
// address in a network the site denies would let that client in. For each
// granted address relaygate finds the rule couriertcpd would apply
// without the grant; a deny (of the address or of a network holding it)
// keeps the grant out (counted, logged), otherwise the grant's record is
// that rule's instructions plus RELAYCLIENT. A catch-all "*<TAB>deny"
// does not keep grants out. Keys are whole addresses (four octets, eight
// groups), which couriertcpd never cuts a client's address to, so no
// grant matches another client.
type courier struct {
	path    string
	restart []string
	makedat string // "" until found
	log     zerolog.Logger

	// Owned by the runner's goroutine (Changed and Write).
	site    siteRules[courierRule] // -courier-smtpaccess-static, in the files' order
	rules   map[string]string      // the same, by key
	leftOut uint64                 // hash of the grants the previous write left out

	leftOutDeny atomic.Int64
}

func newCourier(c Config, makedat string) *courier {
	o := &courier{path: c.CourierSmtpaccess, restart: strings.Fields(c.courierRestart()),
		makedat: makedat, log: zerolog.Nop(), rules: map[string]string{},
		leftOut: fnv.New64a().Sum64(), // none left out yet: nothing to log
		site: siteRules[courierRule]{flag: "-courier-smtpaccess-static", path: c.CourierStatic, into: "the access file",
			stamp: courierStamp, load: loadCourierStatic, parse: parseCourierAccess, log: zerolog.Nop()}}
	o.site.start()
	return o
}

func (c Config) courierRestart() string {
	if c.CourierRestart == "" {
		return DefaultCourierRestart
	}
	return c.CourierRestart
}

func (o *courier) Kind() string                 { return "courier" }
func (o *courier) Path() string                 { return o.path }
func (o *courier) setLogger(log zerolog.Logger) { o.log, o.site.log = log, log }

// makedatPaths are where makedat is looked for when it is not in PATH
// (Debian: /usr/bin; upstream's default prefix: /usr/lib/courier).
var makedatPaths = []string{"/usr/bin/makedat", "/usr/lib/courier/bin/makedat", "/usr/lib/courier/makedat"}

func findMakedat() (string, error) {
	if p, err := exec.LookPath("makedat"); err == nil {
		return p, nil
	}
	for _, p := range makedatPaths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("makedat not found in PATH or " + strings.Join(makedatPaths, ", ") + " (Debian: apt-get install courier-base)")
}

// courierText is makedat's input: the site's rules in their order, a
// granted address the site names exactly taking that rule's place, then
// the other grants; and the grants left out.
func (o *courier) courierText(addrs []netip.Addr) ([]byte, []netip.Addr) {
	type result struct {
		value string
		allow bool
	}
	bySite := map[string]result{} // by the site rule's key: most grants share a few rules
	granted := make(map[string]string, len(addrs))
	var extra []string
	var deny []netip.Addr
	key := make([]byte, 0, 64)
	for _, a := range addrs {
		key = appendCourierKey(key[:0], a)
		rk, rv, found := courierLookup(o.rules, string(key))
		r, ok := bySite[rk]
		if !ok {
			r.value, r.allow = courierGrantValue(rk, rv, found)
			bySite[rk] = r
		}
		if !r.allow {
			deny = append(deny, a)
			continue
		}
		k := string(key)
		if _, dup := granted[k]; dup {
			continue // makedat refuses a key twice
		}
		if _, named := o.rules[k]; !named {
			extra = append(extra, k)
		}
		granted[k] = r.value
	}
	b := make([]byte, 0, 64+40*len(addrs))
	for _, r := range o.site.rules {
		v := r.value
		if g, ok := granted[r.key]; ok {
			v = g
		}
		b = append(append(append(append(b, r.key...), '\t'), v...), '\n')
	}
	for _, k := range extra {
		b = append(append(append(append(b, k...), '\t'), granted[k]...), '\n')
	}
	return b, deny
}

func (o *courier) Write(ctx context.Context, addrs []netip.Addr) error {
	if o.site.refresh() {
		o.useSiteRules()
	}
	if err := o.site.ready(); err != nil {
		return err
	}
	if o.makedat == "" {
		md, err := findMakedat()
		if err != nil {
			return fmt.Errorf("-courier-smtpaccess %s: %w", o.path, err)
		}
		o.makedat = md
	}
	text, deny := o.courierText(addrs)
	if err := o.build(ctx, text); err != nil {
		return err
	}
	o.reportLeftOut(deny)
	if err := run(ctx, nil, o.restart); err != nil {
		return fmt.Errorf("-courier-restart (couriertcpd reads the new file only after it): %w", err)
	}
	return nil
}

// build runs makedat on text into a temporary file next to the access
// file, then fsyncs it and renames it into place.
func (o *courier) build(ctx context.Context, text []byte) (err error) {
	dir := filepath.Dir(o.path)
	f, err := os.CreateTemp(dir, cdbwriter.TempPrefix(o.path)+"*")
	if err != nil {
		return err
	}
	tmp, work := f.Name(), f.Name()+"-build"
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp)
			os.Remove(work)
		}
	}()
	// makedatprog stops at a line "." and reads C strings: a NUL in the
	// text would end it early, and makedat would succeed with the records
	// after it (the grants) left out. parseCourierAccess cuts NULs as
	// makedatprog does and stops at "."; this makes sure of it.
	if bytes.IndexByte(text, 0) >= 0 || bytes.HasPrefix(text, []byte(".\n")) || bytes.Contains(text, []byte("\n.\n")) {
		return errors.New("makedat input with a NUL or a line \".\" (a bug: makedat would drop the records after it)")
	}
	// makedat builds work, then renames it to tmp. work is created here,
	// as tmp is, so that its name, which can be guessed from tmp's, is
	// never a link someone else put there (GDBM_NEWDB truncates an
	// existing file, and follows a link).
	wf, err := os.OpenFile(work, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	wf.Close()
	// -src=- is makedat's stdin (it adds the "." line makedatprog ends at).
	if err := run(ctx, strings.NewReader(string(text)), []string{o.makedat, "-src=-", "-file=" + tmp, "-tmp=" + work}); err != nil {
		return fmt.Errorf("makedat: %w", err)
	}
	f, err = os.OpenFile(tmp, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	// couriertcpd reads it as the user it runs as (Debian: courier).
	if err = readableAndSynced(f); err != nil {
		return fmt.Errorf("%s: %w", tmp, err)
	}
	if err = os.Rename(tmp, o.path); err != nil {
		return err
	}
	return syncDir(dir)
}

// reportLeftOut records the grants a write left out, and logs them when
// they differ from the previous write's.
func (o *courier) reportLeftOut(deny []netip.Addr) {
	o.leftOutDeny.Store(int64(len(deny)))
	h := fnv.New64a()
	for _, a := range deny {
		b, _ := a.MarshalBinary()
		h.Write(b)
	}
	if sum := h.Sum64(); sum != o.leftOut {
		o.leftOut = sum
		if len(deny) == 0 {
			o.log.Info().Msg("every grant is in Courier's access file again")
			return
		}
		o.log.Warn().Int("denied_by_site", len(deny)).Stringers("denied", first(deny, 10)).
			Msg("granted addresses left out of Courier's access file: the site's static rules deny them; these clients cannot relay through Courier")
	}
}

// samples are the Courier output's own series.
func (o *courier) samples(yield func(metric.Sample)) {
	yield(metric.Sample{Name: metric.Prefix + "courier_static_errors_total", Kind: metric.Counter,
		Help:  "Versions of -courier-smtpaccess-static that did not parse (the access file kept the rules that last did).",
		Value: float64(o.site.errors.Load())})
	yield(metric.Sample{Name: metric.Prefix + "courier_static_stale", Kind: metric.Gauge,
		Help:  "1 while -courier-smtpaccess-static does not parse and the access file carries the site's rules that last did.",
		Value: float64(o.site.stale.Load())})
	yield(metric.Sample{Name: metric.Prefix + "courier_grants_left_out", Kind: metric.Gauge,
		Help:  "Grants the latest Courier write left out: the site's static rules deny them.",
		Value: float64(o.leftOutDeny.Load())})
}
