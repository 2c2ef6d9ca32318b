package receiver

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/relaygate/relaygate/receiver/syslogmsg"
)

// What every message passes on its way out, whatever carried it: who sent
// it (allowed), whether any parser wants its program, whether its HOSTNAME
// is allowed; then the hand-off to the consumer.

// source says where a message came from.
type source struct {
	transport string         // "udp", "tcp", "tls" or "unix"
	peer      string         // set for streams and the unix socket
	addr      netip.AddrPort // UDP: made into peer only if needed
	tlsPeer   string
	uid       int64 // unix: the sender's uid as the kernel told it; -1 unknown
}

// name is the sender, for the message and the log. A UDP sender's address
// is formatted only here: most datagrams are dropped before anything needs
// it.
func (s source) name() string {
	if s.peer == "" && s.addr.IsValid() {
		return s.addr.String()
	}
	return s.peer
}

// allowed reports whether a UDP, TCP or TLS sender is inside Allow.
func (r *Receiver) allowed(ap netip.AddrPort) bool {
	a := ap.Addr().Unmap()
	for _, p := range r.cfg.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// deliver parses raw and sends it on. It reports false once ctx is done.
func (r *Receiver) deliver(ctx context.Context, raw []byte, src source, out chan<- Message) bool {
	m, ok := r.admit(raw, src, time.Time{})
	if !ok {
		return true
	}
	select {
	case out <- m:
		return true
	case <-ctx.Done():
		return false
	}
}

// Admit puts a message that reached the daemon by another way than the
// receiver's sockets (RELP) through the checks every message passes:
// trimming, the program filter (Wanted), the HOSTNAME list (AllowHosts),
// and the origin element's claim, believed from a sender in OriginFrom or,
// with OriginFromTLS, one with a verified TLS client certificate
// (tlsPeer). It reports false for a message dropped, counted as the
// receiver counts its own; the caller still acknowledges it. peer is the
// sender; received the time of receipt (Config.Now if zero).
func (r *Receiver) Admit(raw []byte, transport string, peer netip.AddrPort, tlsPeer string, received time.Time) (Message, bool) {
	return r.admit(raw, source{transport: transport, addr: peer, tlsPeer: tlsPeer}, received)
}

// admit is deliver's checks; received is zero to read the clock once the
// message passed them.
func (r *Receiver) admit(raw []byte, src source, received time.Time) (Message, bool) {
	raw = syslogmsg.TrimTrailingControl(raw)
	// The fast path's spans serve both the program filter and the
	// envelope; only what it does not recognise pays for go-syslog.
	sp, fast := syslogmsg.FastSpans(raw)
	if fast && r.cfg.Wanted != nil && !r.cfg.Wanted(sp.ProgramBytes(raw)) {
		r.stats.unwanted.Add(1)
		return Message{}, false
	}
	var env syslogmsg.Envelope
	if fast {
		env = sp.Envelope(raw)
	} else {
		if len(raw) == 0 {
			return Message{}, false
		}
		var err error
		// ParseEnvelope tries the fast path again before the slow one:
		// a few nanoseconds, beside the microseconds go-syslog takes.
		if env, err = syslogmsg.ParseEnvelope(raw); err != nil {
			r.stats.malformed.Add(1)
			// Untagged text is common noise (kernel lines, broken senders):
			// counted, logged only at debug.
			r.log.Debug().Err(err).Str("peer", src.name()).Msg("message without program tag")
			return Message{}, false
		}
	}
	if r.hosts != nil {
		if _, ok := r.hosts[strings.ToLower(env.Host)]; !ok {
			r.stats.hostNotAllowed.Add(1)
			r.warnf("host_not_allowed", src.name(), fmt.Sprintf("dropped message from HOSTNAME %q, not in -allow-hosts", env.Host))
			return Message{}, false
		}
	}
	if !fast && r.cfg.Wanted != nil && !r.cfg.Wanted([]byte(env.Program)) {
		r.stats.unwanted.Add(1)
		return Message{}, false
	}
	if received.IsZero() {
		received = r.cfg.Now()
	}
	m := Message{Envelope: env, Received: received, Transport: src.transport, Peer: src.name(), TLSPeer: src.tlsPeer}
	m.Origin = r.claim(env, src)
	return m, true
}
