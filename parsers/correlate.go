package parsers

import (
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// A Correlator joins the two lines of a two-line daemon (popa3d, old
// vm-pop3d, Solid POP3 without --enable-logextend, GNU pop3d): the address
// line a process logs when a client connects (a Connect event) and the
// success line the same process logs later without an address (an Auth
// event). Lines are matched by syslog host, program and PID, so a message
// without a PID cannot be correlated.
//
// The table of remembered address lines is bounded twice: an entry lives at
// most maxAge, and when maxEntries are pending the oldest is evicted, so a
// flood of connections that never authenticate costs a fixed amount of
// memory. Every feed does amortised O(1) work: entries sit in a map and in a
// list in insertion order, and expiry pops them lazily from the old end.
//
// The Correlator reads no clock: the caller passes the time of each message.
// It is driven only through a Pipeline (NewPipeline), so that the daemon,
// `relaygate parse` and the tests feed and forget alike; like Step, it is
// not safe for concurrent use.
type Correlator struct {
	maxEntries int
	maxAge     time.Duration
	byKey      map[corrKey]int32 // key -> index into nodes
	nodes      []corrNode        // grows up to maxEntries, then recycled
	free       int32             // head of the free list through next, or -1
	head, tail int32             // oldest and newest entry, or -1
	evicted    atomic.Int64      // read by a metrics scrape while the owner feeds
	buf        noteBuf           // scratch space for notes; longer ones allocate
}

// corrKey names one process of one daemon on one host.
type corrKey struct{ host, program, pid string }

func (k corrKey) String() string { return string(noteBuf(nil).key(k)) }

// noteBuf builds a note in a buffer the Correlator reuses, so that a note
// costs one allocation, for the final string.
type noteBuf []byte

func (b noteBuf) s(s string) noteBuf        { return append(b, s...) }
func (b noteBuf) addr(a netip.Addr) noteBuf { return a.AppendTo(b) }

// key appends "host program[pid]", the way syslog showed the message.
func (b noteBuf) key(k corrKey) noteBuf {
	if k.host != "" {
		b = append(append(b, k.host...), ' ')
	}
	b = append(b, k.program...)
	if k.pid != "" {
		b = append(append(append(b, '['), k.pid...), ']')
	}
	return b
}

type corrNode struct {
	key        corrKey
	addr       netip.Addr
	at         time.Time
	prev, next int32
}

// NewCorrelator keeps at most maxEntries pending address lines, each for at
// most maxAge. A maxEntries below 1 is taken as 1. An entry is expired once
// more than maxAge has passed since its address line, so with a maxAge of
// zero only an Auth logged at the very same instant can use it.
func NewCorrelator(maxEntries int, maxAge time.Duration) *Correlator {
	if maxEntries < 1 {
		maxEntries = 1
	}
	if maxEntries > 1<<30 {
		maxEntries = 1 << 30 // node indices are int32
	}
	return &Correlator{
		maxEntries: maxEntries,
		maxAge:     maxAge,
		byKey:      make(map[corrKey]int32),
		free:       -1,
		head:       -1,
		tail:       -1,
		buf:        make(noteBuf, 0, 256),
	}
}

// feed takes a message and the event a parser found in it (any kind) at time
// now.
//
// ok=true: act on out, which is a Login (an Auth joined with its remembered
// address: Addr from the Connect, User, Daemon and Session from the Auth) or
// the Login or Logout event passed through unchanged. A Login or Logout also
// ends whatever the correlator remembered for its process.
//
// ok=false: nothing to act on. A Connect was remembered (replacing an older
// one of the same process, perhaps evicting the oldest entry), a Fail made
// the correlator forget its process, or an Auth found no usable address line.
//
// note says what happened in words for `relaygate parse --explain`, such as
// "remembered 192.0.2.10 for mx1 popa3d[123]"; it may be set when ok is
// true as well.
func (c *Correlator) feed(m Message, ev Event, now time.Time) (out Event, ok bool, note string) {
	c.expire(now)
	key := corrKey{host: m.Host, program: normalizeProgram(m.Program), pid: m.PID}
	b := c.buf[:0]
	switch ev.Kind {
	case Login, Logout:
		if key.pid != "" {
			if i, found := c.byKey[key]; found {
				c.remove(i)
				b = b.s("forgot the address line of ").key(key)
				note = string(b)
			}
		}
		return ev, true, note
	case Connect:
		if key.pid == "" {
			return Event{}, false, string(b.s("no PID on ").key(key).s(": cannot correlate, address line ignored"))
		}
		if !ev.Addr.IsValid() {
			// Parsers return an *AddrError instead; this is defence in depth.
			if i, found := c.byKey[key]; found {
				c.remove(i)
			}
			return Event{}, false, string(b.s("address line of ").key(key).s(" has no address: ignored"))
		}
		b = c.remember(b, key, ev.Addr.Unmap(), now)
		return Event{}, false, string(b)
	case Auth:
		if key.pid == "" {
			return Event{}, false, string(b.s("no PID on ").key(key).s(": cannot correlate, success line ignored"))
		}
		i, found := c.byKey[key]
		if !found {
			return Event{}, false, string(b.s("no address line seen for ").key(key))
		}
		n := c.nodes[i]
		c.remove(i)
		if c.expired(n.at, now) {
			b = b.s("address line of ").key(key).s(" (").addr(n.addr).s(") is older than ")
			return Event{}, false, string(b.s(c.maxAge.String()).s(": forgot it, no grant"))
		}
		out = Event{Kind: Login, Addr: n.addr, User: ev.User, Daemon: ev.Daemon, Session: ev.Session}
		return out, true, string(b.s("joined with ").addr(n.addr).s(" from the address line of ").key(key))
	case Fail:
		if key.pid != "" {
			if i, found := c.byKey[key]; found {
				c.remove(i)
				return Event{}, false, string(b.s("forgot ").key(key))
			}
		}
		return Event{}, false, string(b.s("nothing remembered for ").key(key))
	}
	return Event{}, false, string(b.s("ignored an event of kind ").s(ev.Kind.String()))
}

// forget drops the address line remembered for m's process, if any, and says
// so. The Pipeline calls it when a parser refuses a message: a process
// whose own address line could not be used must not be joined with an older
// address line of the same PID.
func (c *Correlator) forget(m Message) (note string) {
	key := corrKey{host: m.Host, program: normalizeProgram(m.Program), pid: m.PID}
	if key.pid == "" {
		return ""
	}
	if i, found := c.byKey[key]; found {
		c.remove(i)
		return "forgot " + key.String()
	}
	return ""
}

// pending returns the number of pending address lines, expired ones included
// until a feed drops them.
func (c *Correlator) pending() int { return len(c.byKey) }

// evictions returns how many pending entries were dropped because the table was
// full, not counting entries that expired or were replaced. Unlike the rest
// of the Correlator it may be called from any goroutine.
func (c *Correlator) evictions() int64 { return c.evicted.Load() }

func (c *Correlator) expired(at, now time.Time) bool {
	return now.Sub(at) > c.maxAge
}

// expire drops entries older than maxAge from the old end of the list. If
// the caller's clock went backwards an entry may be out of order; Auth checks
// the age of the entry it uses, so such an entry never grants late.
func (c *Correlator) expire(now time.Time) {
	for c.head >= 0 && c.expired(c.nodes[c.head].at, now) {
		c.remove(c.head)
	}
}

func (c *Correlator) remember(b noteBuf, key corrKey, addr netip.Addr, now time.Time) noteBuf {
	b = b.s("remembered ").addr(addr).s(" for ").key(key)
	if i, found := c.byKey[key]; found {
		b = b.s(" (replacing ").addr(c.nodes[i].addr).s(")")
		c.remove(i)
	} else if len(c.byKey) >= c.maxEntries {
		old := c.nodes[c.head].key
		c.remove(c.head)
		n := c.evicted.Add(1)
		b = b.s(" (table full: evicted ").key(old).s(", ")
		b = strconv.AppendInt(b, n, 10)
		b = b.s(" evicted so far)")
	}
	// The key's strings may point into a large receive buffer; a copy keeps
	// the table's memory bounded by what it actually stores.
	key = cloneKey(key)
	i := c.alloc()
	c.nodes[i] = corrNode{key: key, addr: addr, at: now, prev: c.tail, next: -1}
	if c.tail >= 0 {
		c.nodes[c.tail].next = i
	} else {
		c.head = i
	}
	c.tail = i
	c.byKey[key] = i
	return b
}

// cloneKey copies the three strings of k into one new allocation.
func cloneKey(k corrKey) corrKey {
	var b strings.Builder
	b.Grow(len(k.host) + len(k.program) + len(k.pid))
	b.WriteString(k.host)
	b.WriteString(k.program)
	b.WriteString(k.pid)
	s := b.String()
	h, p := len(k.host), len(k.host)+len(k.program)
	return corrKey{host: s[:h], program: s[h:p], pid: s[p:]}
}

func (c *Correlator) alloc() int32 {
	if c.free >= 0 {
		i := c.free
		c.free = c.nodes[i].next
		return i
	}
	c.nodes = append(c.nodes, corrNode{})
	return int32(len(c.nodes) - 1)
}

func (c *Correlator) remove(i int32) {
	n := &c.nodes[i]
	if n.prev >= 0 {
		c.nodes[n.prev].next = n.next
	} else {
		c.head = n.next
	}
	if n.next >= 0 {
		c.nodes[n.next].prev = n.prev
	} else {
		c.tail = n.prev
	}
	delete(c.byKey, n.key)
	*n = corrNode{prev: -1, next: c.free}
	c.free = i
}

// parseAddrToEnd parses s, the rest of a line after its address literal
// ("Session from "), as one bare address, the way the two-line daemons log
// it with inet_ntoa or getnameinfo(NI_NUMERICHOST). Anything after the
// address makes the line a refusal, not a grant: the daemons write nothing
// there, so it can only come from a name the client chose.
func parseAddrToEnd(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, &AddrError{Addr: "", Reason: "no address after the literal"}
	}
	if strings.ContainsAny(s, " \t") {
		return netip.Addr{}, &AddrError{Addr: s, Reason: "text after the address (user name injection?)"}
	}
	return parseAddr(s)
}
