package main

import (
	"sync"

	"github.com/relaygate/relaygate/parsers"
)

// eventKey names one series of relaygate_events_total. Both parts come from
// the configuration (a parser's name or a rule's daemon, and the parser
// kind), never from message text: a label holding an address or a user name
// would let every login create a new series.
type eventKey struct{ daemon, kind string }

// maxEventKeys fences the number of series even if a rules file is reloaded
// over and over with new daemon names; past it, events count as "other".
const maxEventKeys = 512

// eventCounts counts what the parsers recognised, by daemon and kind. The
// pipeline goroutine adds; the metrics scrape reads.
type eventCounts struct {
	mu sync.Mutex
	m  map[eventKey]int64
}

func (c *eventCounts) add(daemon string, kind parsers.Kind) {
	k := eventKey{daemon: daemon, kind: kind.String()}
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

// snapshot returns a copy, so a scrape never holds the lock while encoding.
func (c *eventCounts) snapshot() map[eventKey]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[eventKey]int64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}
