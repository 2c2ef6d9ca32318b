package receiver

import (
	"net/netip"
	"sync/atomic"

	"github.com/relaygate/relaygate/internal/metric"
)

// Stats counts what the receiver saw; it is safe for concurrent use. The
// counts are read only through Samples, which names them as /metrics and
// the shutdown log line show them. The zero value is ready.
type Stats struct {
	udp, tcp, tls, unix atomic.Int64 // messages received per transport
	notAllowed          atomic.Int64 // datagrams and connections from senders outside Allow
	connsNotAllowed     atomic.Int64 // of those, the TCP and TLS connections (closed at accept)
	hostNotAllowed      atomic.Int64 // messages whose HOSTNAME is not in AllowHosts
	tooLong             atomic.Int64 // messages over the size limit (DefaultMaxMessage), skipped
	malformed           atomic.Int64 // no program tag could be read, or bad framing
	connectionsAccepted atomic.Int64 // TCP and TLS connections taken into service
	connectionsOpen     atomic.Int64 // gauge: TCP and TLS connections open now
	connsRefused        atomic.Int64 // connections closed at accept because MaxConns were open
	connsRefusedPerHost atomic.Int64 // connections closed at accept because their sender held MaxConnsPerHost
	idleClosed          atomic.Int64 // connections closed after IdleTimeout without a message
	tlsRefused          atomic.Int64 // TLS handshakes that failed (no or untrusted client certificate, not TLS, timeout)
	unwanted            atomic.Int64 // messages of programs no parser handles (Config.Wanted), dropped unparsed

	// udpSocket is the bound UDP address from Listen to Close: the kernel
	// counts that socket's drops, which no counter here can see.
	udpSocket atomic.Pointer[netip.AddrPort]
	// udpDropsAtClose is the socket's drop count read as Close let go of
	// it (nil before), so the shutdown line still reports it.
	udpDropsAtClose atomic.Pointer[int64]
}

// Help texts of the labelled families; each is one text for every label
// value, as Prometheus requires.
const (
	helpReceived = "Syslog messages received, by transport."
	helpDropped  = "Messages and connections dropped before parsing, by reason."
	helpRefused  = "TCP and TLS connections closed at accept, by reason: max_conns (-max-conns open), per_host (the sender holds -max-conns-per-host), not_allowed (outside -allow)."
)

// Samples describes every series the receiver counts, once. A message is
// never dropped for lack of room (the readers wait for the pipeline, and a
// UDP burst the socket cannot hold is relaygate_udp_socket_drops_total), so
// there is no queue_full reason. relaygate_udp_socket_drops_total is
// described only while the UDP socket is open and the kernel reports it.
func (s *Stats) Samples(yield func(metric.Sample)) {
	labelled := func(name, help, label, value string, c *atomic.Int64) {
		yield(metric.Sample{Name: name, Help: help, Kind: metric.Counter, Label: label, LabelValue: value, Value: float64(c.Load())})
	}
	counter := func(name, help string, c *atomic.Int64) {
		yield(metric.Sample{Name: name, Help: help, Kind: metric.Counter, Value: float64(c.Load())})
	}
	const received, dropped, refused = metric.Prefix + "messages_received_total", metric.Prefix + "messages_dropped_total", metric.Prefix + "connections_refused_total"
	labelled(received, helpReceived, "transport", "udp", &s.udp)
	labelled(received, helpReceived, "transport", "tcp", &s.tcp)
	labelled(received, helpReceived, "transport", "tls", &s.tls)
	labelled(received, helpReceived, "transport", "unix", &s.unix)

	labelled(dropped, helpDropped, "reason", "not_allowed", &s.notAllowed)
	labelled(dropped, helpDropped, "reason", "host_not_allowed", &s.hostNotAllowed)
	labelled(dropped, helpDropped, "reason", "too_long", &s.tooLong)
	labelled(dropped, helpDropped, "reason", "malformed", &s.malformed)
	labelled(dropped, helpDropped, "reason", "unwanted_program", &s.unwanted)

	labelled(refused, helpRefused, "reason", "max_conns", &s.connsRefused)
	labelled(refused, helpRefused, "reason", "per_host", &s.connsRefusedPerHost)
	labelled(refused, helpRefused, "reason", "not_allowed", &s.connsNotAllowed)

	counter(metric.Prefix+"receiver_connections_accepted_total", "TCP and TLS connections taken into service (past -allow, -max-conns and -max-conns-per-host).", &s.connectionsAccepted)
	yield(metric.Sample{Name: metric.Prefix + "receiver_connections_open", Help: "TCP and TLS connections open now.", Kind: metric.Gauge, Value: float64(s.connectionsOpen.Load())})
	counter(metric.Prefix+"receiver_idle_closed_total", "TCP and TLS connections closed after -idle-timeout without a message.", &s.idleClosed)
	counter(metric.Prefix+"receiver_tls_refused_total", "TLS handshakes that failed: no or untrusted client certificate, not TLS, or no handshake within the timeout.", &s.tlsRefused)

	drops, ok := int64(0), false
	if ap := s.udpSocket.Load(); ap != nil {
		drops, ok = udpSocketDrops(*ap)
	} else if d := s.udpDropsAtClose.Load(); d != nil {
		drops, ok = *d, true
	}
	if ok {
		yield(metric.Sample{Name: metric.Prefix + "udp_socket_drops_total", Kind: metric.Counter, Value: float64(drops),
			Help: "Datagrams the kernel dropped because the UDP socket's receive buffer was full (from /proc/net/udp)."})
	}
}

// closeUDP latches the UDP socket's drop count and forgets the socket:
// another socket may bind the address next (a takeover's), and its drops
// are not this receiver's.
func (s *Stats) closeUDP() {
	if ap := s.udpSocket.Swap(nil); ap != nil {
		if drops, ok := udpSocketDrops(*ap); ok {
			s.udpDropsAtClose.Store(&drops)
		}
	}
}
