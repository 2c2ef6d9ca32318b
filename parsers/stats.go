package parsers

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/relaygate/relaygate/internal/metric"
)

// stats counts what a Pipeline made of its messages. Step adds from the
// pipeline goroutine; a scrape reads from any other, so every count is an
// atomic or sits behind a mutex.
type stats struct {
	unmatched atomic.Int64 // most of any mail log; counted, never logged
	refused   atomic.Int64 // a login shape with an address that can't be granted
	logins    atomic.Int64 // handed to the grant table, two-line logins after joining
	events    eventCounts  // by daemon and kind, whatever the correlator made of them
}

// eventKey names one series of relaygate_events_total. Both parts come from
// the configuration (a parser's name or a rule's daemon, and the event
// kind), never from message text: a label holding an address or a user name
// would let every login create a new series.
type eventKey struct {
	daemon string
	kind   Kind
}

// maxEventKeys fences the number of series even if a rules file is reloaded
// over and over with new daemon names; past it, events count as daemon
// "other".
const maxEventKeys = 512

// eventCounts counts recognised events by daemon and kind. Only a parsed
// event takes the mutex, and most messages are not one, so it is never
// contended on the pipeline's hot path.
type eventCounts struct {
	mu sync.Mutex
	m  map[eventKey]int64
}

func (c *eventCounts) add(daemon string, kind Kind) {
	if kind > Fail {
		kind = 0 // every kind without a name is one "unknown" series, not several
	}
	k := eventKey{daemon: daemon, kind: kind}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[eventKey]int64)
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= maxEventKeys {
		k.daemon = "other"
	}
	c.m[k]++
}

type eventCount struct {
	eventKey
	n int64
}

// snapshot copies the counts, sorted, so a scrape never holds the lock
// while it encodes and sees the series in the same order every time.
func (c *eventCounts) snapshot() []eventCount {
	c.mu.Lock()
	out := make([]eventCount, 0, len(c.m))
	for k, n := range c.m {
		out = append(out, eventCount{k, n})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b eventCount) int {
		return cmp.Or(cmp.Compare(a.daemon, b.daemon), cmp.Compare(a.kind, b.kind))
	})
	return out
}

// Counts is a snapshot of a Pipeline's counters.
type Counts struct {
	Unmatched int64 // messages no parser recognised
	Refused   int64 // messages a parser refused (an *AddrError)
	Events    int64 // events the parsers recognised, of any daemon and kind
	Logins    int64 // logins handed to the grant table
	Evicted   int64 // correlator entries evicted because its table was full
}

// Counts returns the pipeline's counters; it is safe to call while another
// goroutine runs Step.
func (p *Pipeline) Counts() Counts {
	c := Counts{
		Unmatched: p.stats.unmatched.Load(),
		Refused:   p.stats.refused.Load(),
		Logins:    p.stats.logins.Load(),
		Evicted:   p.corr.evictions(),
	}
	for _, e := range p.stats.events.snapshot() {
		c.Events += e.n
	}
	return c
}

// Samples describes every series the pipeline counts (metric.Source); it is
// safe to call while another goroutine runs Step.
func (p *Pipeline) Samples(yield func(metric.Sample)) {
	counter := func(name, help string, v int64) {
		yield(metric.Sample{Name: metric.Prefix + name, Help: help, Kind: metric.Counter, Value: float64(v)})
	}
	counter("messages_unmatched_total", "Messages no parser recognised (most of any mail log).", p.stats.unmatched.Load())
	counter("logins_refused_total", "Login lines whose address can never be granted (unspecified, link-local, …).", p.stats.refused.Load())
	counter("logins_total", "Logins handed to the grant table, two-line logins after pairing.", p.stats.logins.Load())
	for _, e := range p.stats.events.snapshot() {
		yield(metric.Sample{
			Name:  metric.Prefix + "events_total",
			Help:  "Events the parsers recognised, by daemon (parser or rule) and kind.",
			Kind:  metric.Counter,
			Label: "daemon", LabelValue: e.daemon,
			Label2: "kind", LabelValue2: e.kind.String(),
			Value: float64(e.n),
		})
	}
	counter("correlator_evictions_total", "Two-line address lines forgotten before their success line because the correlator's table was full.", p.corr.evictions())
}
