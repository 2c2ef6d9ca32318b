package receiver

import (
	"net"
	"net/netip"
)

// Connection tracking: every TCP and TLS connection is registered from
// accept to its end, so that MaxConns and MaxConnsPerHost hold and Close
// can end them all.

type trackResult int

const (
	trackOK trackResult = iota
	trackFull
	trackHostFull
	trackClosed
)

// hostKey is the sender a connection counts against for MaxConnsPerHost:
// its address, unmapped, so that one host reaching a dual-stack listener
// as ::ffff:192.0.2.1 and as 192.0.2.1 counts once. IPv6 senders are not
// grouped by /64: log hosts in one server subnet share a /64, and grouping
// would let one of them starve its neighbours, while the senders are
// already limited to -allow (list them as /128 there, not a whole /64).
func hostKey(ap netip.AddrPort) netip.Addr {
	return ap.Addr().Unmap()
}

// track registers a connection so Close can end it, unless its sender
// already holds MaxConnsPerHost or MaxConns are already open.
func (r *Receiver) track(c net.Conn, host netip.Addr) trackResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return trackClosed
	}
	if r.perHost[host] >= r.cfg.MaxConnsPerHost {
		return trackHostFull
	}
	if len(r.conns) >= r.cfg.MaxConns {
		return trackFull
	}
	r.conns[c] = host
	r.perHost[host]++
	r.stats.connectionsOpen.Store(int64(len(r.conns)))
	return trackOK
}

func (r *Receiver) untrack(c net.Conn) {
	r.mu.Lock()
	if host, ok := r.conns[c]; ok {
		delete(r.conns, c)
		if r.perHost[host]--; r.perHost[host] <= 0 {
			delete(r.perHost, host)
		}
	}
	r.stats.connectionsOpen.Store(int64(len(r.conns)))
	r.mu.Unlock()
	c.Close()
}

func (r *Receiver) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}
