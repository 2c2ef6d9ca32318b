package receiver

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

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
	raw = syslogmsg.TrimTrailingControl(raw)
	// The fast path's spans serve both the program filter and the
	// envelope; only what it does not recognise pays for go-syslog.
	sp, fast := syslogmsg.FastSpans(raw)
	if fast && r.cfg.Wanted != nil && !r.cfg.Wanted(sp.ProgramBytes(raw)) {
		r.stats.unwanted.Add(1)
		return true
	}
	var env syslogmsg.Envelope
	if fast {
		env = sp.Envelope(raw)
	} else {
		if len(raw) == 0 {
			return true
		}
		var err error
		// ParseEnvelope tries the fast path again before the slow one:
		// a few nanoseconds, beside the microseconds go-syslog takes.
		if env, err = syslogmsg.ParseEnvelope(raw); err != nil {
			r.stats.malformed.Add(1)
			// Untagged text is common noise (kernel lines, broken senders):
			// counted, logged only at debug.
			r.log.Debug().Err(err).Str("peer", src.name()).Msg("message without program tag")
			return true
		}
	}
	if r.hosts != nil {
		if _, ok := r.hosts[strings.ToLower(env.Host)]; !ok {
			r.stats.hostNotAllowed.Add(1)
			r.warnf("host_not_allowed", src.name(), fmt.Sprintf("dropped message from HOSTNAME %q, not in -allow-hosts", env.Host))
			return true
		}
	}
	if !fast && r.cfg.Wanted != nil && !r.cfg.Wanted([]byte(env.Program)) {
		r.stats.unwanted.Add(1)
		return true
	}
	m := Message{Envelope: env, Received: r.cfg.Now(), Transport: src.transport, Peer: src.name(), TLSPeer: src.tlsPeer}
	m.Origin = r.claim(env, src)
	select {
	case out <- m:
		return true
	case <-ctx.Done():
		return false
	}
}
