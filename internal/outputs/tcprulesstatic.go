package outputs

import (
	"errors"
	"fmt"
	"os"
)

// Changed reports, at each poll, whether the static file changed since it
// was last read and then held still for a whole poll (size, time and
// identity the same at two polls in a row): a file an editor is still
// writing is not read half-written.
func (o *tcpRules) Changed() bool {
	if o.static == "" {
		return false
	}
	cur := statFile(o.static)
	stable := cur.same(o.pollStamp)
	o.pollStamp = cur
	if !stable || cur.same(o.readStamp) {
		return false
	}
	o.pending = true
	return true
}

// errStaticChanging: the static file changed while it was read.
var errStaticChanging = errors.New("changed while it was read")

// readStatic reads and parses the static file, refusing a read during
// which the file changed.
func (o *tcpRules) readStatic() ([]tcpRule, fileStamp, error) {
	before := statFile(o.static)
	b, err := os.ReadFile(o.static)
	if err != nil {
		return nil, before, fmt.Errorf("-tcprules-static: %w", err)
	}
	if after := statFile(o.static); !after.same(before) {
		return nil, after, errStaticChanging
	}
	rules, err := parseTCPRules(b)
	if err != nil {
		return nil, before, fmt.Errorf("-tcprules-static %s: %w", o.static, err)
	}
	return rules, before, nil
}

// reload reads the static file once. A file that does not parse leaves
// the rules that last did in place: the grants keep being written with
// them (expired grants leave the cdb as ever), and the error is logged
// once per version of the file and counted; it is read again when it
// changes.
func (o *tcpRules) reload() {
	rules, st, err := o.readStatic()
	if errors.Is(err, errStaticChanging) {
		return // the next poll that finds it still reads it
	}
	o.readStamp = st
	if err != nil {
		o.staticErrors.Add(1)
		o.staticErr = err
		if o.haveRules {
			o.staticStale.Store(1)
			o.log.Error().Err(err).Msg("the static tcprules file does not parse; the cdb keeps the site's rules that last parsed, with the current grants, until it is fixed")
		}
		return
	}
	if o.staticErr != nil && o.haveRules {
		o.log.Info().Int("rules", len(rules)).Msg("the static tcprules file parses again; its rules are in the cdb")
	}
	o.staticErr = nil
	o.staticStale.Store(0)
	o.order, o.rules, o.haveRules = rules, make(map[string][]byte, len(rules)), true
	for _, r := range rules {
		if _, dup := o.rules[string(r.key)]; !dup {
			o.rules[string(r.key)] = r.data
		}
	}
}

// fileStamp tells whether a file changed: its identity, size and time.
type fileStamp struct{ fi os.FileInfo }

func statFile(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{fi}
}

func (a fileStamp) same(b fileStamp) bool {
	if a.fi == nil || b.fi == nil {
		return a.fi == nil && b.fi == nil
	}
	return os.SameFile(a.fi, b.fi) && a.fi.Size() == b.fi.Size() && a.fi.ModTime().Equal(b.fi.ModTime())
}
