package outputs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/internal/metric"
)

// DefaultTCPRulesGrant is what a granted address gets in the tcprules cdb
// on top of the site's rule for it: tcpserver sets RELAYCLIENT to the
// empty string, which qmail-smtpd reads as "may relay" (the Perl back
// end's allow,RELAYCLIENT=”).
const DefaultTCPRulesGrant = `allow,RELAYCLIENT=""`

// tcpRules writes the cdb tcpserver -x reads: one record per granted
// address first, then the site's static rules (-tcprules-static).
//
// A grant never overrides the site: for each granted address relaygate
// finds the rule tcpserver would apply to it without the grant (its exact
// address, else the longest prefix ending in "." or ":", as rules.c looks
// them up, else the catch-all ""). If that rule is a deny for the address
// or a network holding it, the grant is left out (counted, logged): the
// site's deny wins. Otherwise the grant's record carries that rule's
// instructions with -tcprules-grant's variables added (replacing any of
// the same name), so a granted client keeps QMAILQUEUE, DATABYTES,
// RBLSMTPD... from the site's rule and gains RELAYCLIENT. The grant's
// record comes first, so for an address the site names exactly it is the
// one tcpserver reads (the first record of a key wins). A catch-all
// ":deny" does not keep grants out: it says "only clients this file, or
// relaygate, vouches for". Rules on host names (=host) and on
// TCPREMOTEINFO (info@) are not consulted; tcpserver looks the exact
// address up before =host rules, so a grant's record wins over those.
//
// A grant whose text ends in ":" (an IPv6 address written with a final
// "::", 2001:db8:: for instance) is left out too: the IPv6 build of tcpserver
// (Debian's ucspi-tcp-ipv6) looks up every prefix of $TCPREMOTEIP that
// ends in "." or ":", so such a key would let every client whose text
// starts with it relay (2001:db8::7:1:2:3:4, another /64). No other
// address's key ends in "." or ":", so no other grant can match a client
// but its own.
type tcpRules struct {
	path  string
	grant []byte // the compiled -tcprules-grant
	log   zerolog.Logger

	// Owned by the runner's goroutine (Changed and Write).
	site    siteRules[tcpRule] // -tcprules-static, in the file's order
	rules   map[string][]byte  // the same: the first record of each key
	leftOut uint64             // hash of the grants the previous write left out, to log changes only

	leftOutDeny   atomic.Int64 // grants the latest write left out: the site denies them
	leftOutPrefix atomic.Int64 // ...: their key would be a prefix rule
}

func newTCPRules(c Config) (*tcpRules, error) {
	grant, err := c.grantData()
	if err != nil {
		return nil, fmt.Errorf("-tcprules-grant %q: %w", c.TCPRulesGrant, err)
	}
	o := &tcpRules{path: c.TCPRules, grant: grant, log: zerolog.Nop(), rules: map[string][]byte{},
		site: siteRules[tcpRule]{flag: "-tcprules-static", path: c.TCPRulesStatic, into: "the cdb",
			stamp: fileStamp, load: loadTCPRulesStatic, parse: parseTCPRules, log: zerolog.Nop()}}
	o.site.start()
	return o, nil
}

var errGrantDenies = errors.New("a grant must allow: its instructions are added to the site's rule for the address")

func (c Config) grantData() ([]byte, error) {
	g := c.TCPRulesGrant
	if g == "" {
		g = DefaultTCPRulesGrant
	}
	d, err := compileInstructions([]byte(g))
	if err == nil && bytes.HasPrefix(d, []byte("D\x00")) {
		return nil, errGrantDenies
	}
	return d, err
}

func (o *tcpRules) Kind() string                 { return "tcprules" }
func (o *tcpRules) Path() string                 { return o.path }
func (o *tcpRules) setLogger(log zerolog.Logger) { o.log, o.site.log = log, log }

// siteRule is the static rule tcpserver applies to a client whose
// $TCPREMOTEIP is text (rules.c: the exact text, then each prefix ending
// in "." or ":", longest first, then ""); the key it found, or false.
func (o *tcpRules) siteRule(text []byte) (string, []byte, bool) {
	if d, ok := o.rules[string(text)]; ok {
		return string(text), d, true
	}
	for l := len(text); l > 0; l-- {
		if c := text[l-1]; c == '.' || c == ':' {
			if d, ok := o.rules[string(text[:l])]; ok {
				return string(text[:l]), d, true
			}
		}
	}
	d, ok := o.rules[""]
	return "", d, ok
}

// grantFor is the record data for a grant to which the site's rule key
// (data) applies; false if the grant is left out because the site denies
// it (a deny for the address or a network holding it).
func (o *tcpRules) grantFor(key string, data []byte) ([]byte, bool) {
	if bytes.HasPrefix(data, []byte("D\x00")) {
		if key != "" {
			return nil, false
		}
		return o.grant, true // the catch-all deny: see tcpRules
	}
	return mergeInstructions(data, o.grant), true
}

// mergeInstructions is the site's allow data with the grant's variables
// added, each replacing one of the same name.
func mergeInstructions(site, grant []byte) []byte {
	names := map[string]bool{}
	for _, it := range bytes.SplitAfter(grant, []byte{0}) {
		if len(it) > 1 && it[0] == '+' {
			names[string(varName(it))] = true
		}
	}
	out := make([]byte, 0, len(site)+len(grant))
	for _, it := range bytes.SplitAfter(site, []byte{0}) {
		if len(it) > 1 && it[0] == '+' && names[string(varName(it))] {
			continue
		}
		out = append(out, it...)
	}
	return append(out, grant...)
}

// varName is NAME of a "+NAME=value\0" item, as tcpserver splits it.
func varName(it []byte) []byte {
	if i := bytes.IndexByte(it, '='); i >= 0 {
		return it[1:i]
	}
	return it[1:]
}

func (o *tcpRules) Write(_ context.Context, addrs []netip.Addr) error {
	if o.site.refresh() {
		o.useSiteRules()
	}
	if err := o.site.ready(); err != nil {
		return err
	}
	type result struct {
		data  []byte
		allow bool
	}
	bySite := map[string]result{} // by the site rule's key: most grants share a few rules
	var deny, prefix []netip.Addr
	err := cdbwriter.WriteFileAtomic(o.path, 0o644, func(f *os.File) error {
		c := cdbwriter.NewCDB(f, len(addrs)+len(o.site.rules))
		key := make([]byte, 0, 64)
		for _, a := range addrs {
			key = appendTCPKey(key[:0], a)
			if tcpKeyIsPrefix(key) {
				prefix = append(prefix, a)
				continue
			}
			r := result{o.grant, true}
			if rk, rd, found := o.siteRule(key); found {
				var ok bool
				if r, ok = bySite[rk]; !ok {
					r.data, r.allow = o.grantFor(rk, rd)
					bySite[rk] = r
				}
			}
			if !r.allow {
				deny = append(deny, a)
				continue
			}
			c.Put(key, r.data)
		}
		for _, r := range o.site.rules {
			c.Put(r.key, r.data)
		}
		return c.Finish()
	})
	if err != nil {
		return err
	}
	o.reportLeftOut(deny, prefix)
	return nil
}

// reportLeftOut records the grants a write left out, and logs them when
// they differ from the previous write's.
func (o *tcpRules) reportLeftOut(deny, prefix []netip.Addr) {
	o.leftOutDeny.Store(int64(len(deny)))
	o.leftOutPrefix.Store(int64(len(prefix)))
	h := fnv.New64a()
	for _, set := range [][]netip.Addr{deny, prefix} {
		for _, a := range set {
			b, _ := a.MarshalBinary()
			h.Write(b)
		}
		h.Write([]byte{0xff})
	}
	sum := h.Sum64()
	if sum == o.leftOut {
		return
	}
	o.leftOut = sum
	if len(deny)+len(prefix) == 0 {
		o.log.Info().Msg("every grant is in the tcprules cdb again")
		return
	}
	o.log.Warn().Int("denied_by_site", len(deny)).Stringers("denied", first(deny, 10)).
		Int("prefix_keys", len(prefix)).Stringers("prefix", first(prefix, 10)).
		Msg("granted addresses left out of the tcprules cdb: the site's static rules deny them, or (IPv6 ending in ::) tcpserver would read the key as a prefix matching other clients; these clients cannot relay through qmail")
}

func first(a []netip.Addr, n int) []fmt.Stringer {
	out := make([]fmt.Stringer, 0, min(n, len(a)))
	for _, x := range a[:min(n, len(a))] {
		out = append(out, x)
	}
	return out
}

// samples are the tcprules output's own series.
func (o *tcpRules) samples(yield func(metric.Sample)) {
	yield(metric.Sample{Name: metric.Prefix + "tcprules_static_errors_total", Kind: metric.Counter,
		Help:  "Versions of -tcprules-static that did not parse (the cdb kept the rules that last did).",
		Value: float64(o.site.errors.Load())})
	yield(metric.Sample{Name: metric.Prefix + "tcprules_static_stale", Kind: metric.Gauge,
		Help:  "1 while -tcprules-static does not parse and the cdb carries the site's rules that last did.",
		Value: float64(o.site.stale.Load())})
	for _, x := range []struct {
		reason string
		n      *atomic.Int64
	}{{"denied", &o.leftOutDeny}, {"prefix_key", &o.leftOutPrefix}} {
		yield(metric.Sample{Name: metric.Prefix + "tcprules_grants_left_out", Kind: metric.Gauge, Label: "reason", LabelValue: x.reason,
			Help:  "Grants the latest tcprules write left out: denied by the site's static rules, or an IPv6 key ending in \":\" that tcpserver would read as a prefix.",
			Value: float64(x.n.Load())})
	}
}
