package main

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metric names. No label ever carries an address or a user name: labels
// come from fixed sets (transports, drop reasons, parser names and kinds).
const (
	metricReceived   = "relaygate_messages_received_total"
	metricDropped    = "relaygate_messages_dropped_total"
	metricRefused    = "relaygate_connections_refused_total"
	metricEvents     = "relaygate_events_total"
	metricGrants     = "relaygate_grants"
	metricPublishDur = "relaygate_publish_duration_seconds"
)

// newRegistry returns a registry of its own for one daemon (never the global
// one, so two daemons in one test binary don't collide). Its collector reads
// the daemon's existing atomic counters at scrape time: nothing is counted
// twice.
func newRegistry(d *daemon, publishSeconds prometheus.Histogram) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		&statsCollector{d: d},
		publishSeconds,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

func newPublishHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: metricPublishDur,
		Help: "Time to write the map and rename it into place, for each successful publish.",
		// A publish is an fsync or two: milliseconds on a healthy disk,
		// seconds when something is wrong.
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
}

// statsCollector turns the daemon's counters into metrics at scrape time.
type statsCollector struct{ d *daemon }

// Describe sends nothing, which makes this an unchecked collector: which
// series exist depends on what the receiver counts and which daemons have
// logged, so they cannot all be described up front.
func (c *statsCollector) Describe(chan<- *prometheus.Desc) {}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	counter := func(name, help string, v int64) {
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, help, nil, nil), prometheus.CounterValue, float64(v))
	}
	gauge := func(name, help string, v float64) {
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, v)
	}

	received := prometheus.NewDesc(metricReceived, "Syslog messages received, by transport.", []string{"transport"}, nil)
	dropped := prometheus.NewDesc(metricDropped, "Messages and connections dropped before parsing, by reason.", []string{"reason"}, nil)
	refused := prometheus.NewDesc(metricRefused, "TCP and TLS connections closed at accept, by reason: max_conns (-max-conns open), per_host (the sender holds -max-conns-per-host), not_allowed (outside -allow).", []string{"reason"}, nil)
	// The receiver blocks rather than drops when the pipeline is behind (the
	// kernel's socket buffer takes the overflow, see
	// relaygate_udp_socket_drops_total), so queue_full stays 0; it is
	// exported so dashboards and alerts need no change if that ever changes.
	ch <- prometheus.MustNewConstMetric(dropped, prometheus.CounterValue, 0, "queue_full")
	for name, v := range d.rstats.Snapshot() {
		switch family, label := receiverMetric(name); family {
		case metricReceived:
			ch <- prometheus.MustNewConstMetric(received, prometheus.CounterValue, float64(v), label)
		case metricDropped:
			ch <- prometheus.MustNewConstMetric(dropped, prometheus.CounterValue, float64(v), label)
		case metricRefused:
			ch <- prometheus.MustNewConstMetric(refused, prometheus.CounterValue, float64(v), label)
		default:
			if name == "connections_open" {
				gauge(family, "TCP and TLS connections open now.", float64(v))
			} else {
				counter(family, "Receiver counter "+name+".", v)
			}
		}
	}
	if drops, ok := udpSocketDrops(d.recv.UDPAddr()); ok {
		counter("relaygate_udp_socket_drops_total",
			"Datagrams the kernel dropped because the UDP socket's receive buffer was full (from /proc/net/udp).", drops)
	}

	counter("relaygate_messages_unmatched_total", "Messages no parser recognised (most of any mail log).", d.pstats.Unmatched.Load())
	counter("relaygate_logins_refused_total", "Login lines whose address can never be granted (unspecified, link-local, …).", d.pstats.Refused.Load())
	counter("relaygate_logins_total", "Logins handed to the grant table, two-line logins after pairing.", d.pstats.Logins.Load())
	events := prometheus.NewDesc(metricEvents, "Events the parsers recognised, by daemon (parser or rule) and kind.", []string{"daemon", "kind"}, nil)
	for k, v := range d.pstats.Events.snapshot() {
		ch <- prometheus.MustNewConstMetric(events, prometheus.CounterValue, float64(v), k.daemon, k.kind)
	}

	w := &d.wstats
	gauge(metricGrants, "Addresses in the map now.", float64(w.Active.Load()))
	counter("relaygate_grants_added_total", "Logins that added an address to the map.", w.Granted.Load())
	counter("relaygate_grants_extended_total", "Logins that extended an existing grant.", w.Extended.Load())
	counter("relaygate_grants_excluded_total", "Logins not granted because the address is excluded (-exclude, mynetworks).", w.Excluded.Load())
	counter("relaygate_grants_expired_total", "Grants that expired.", w.Expired.Load())
	counter("relaygate_grants_evicted_total", "Grants evicted because -max-entries was reached.", w.Evicted.Load())
	counter("relaygate_publishes_total", "Successful map publishes.", w.Publishes.Load())
	counter("relaygate_publish_errors_total", "Failed map publishes (the previous map stayed in place).", w.PublishErrors.Load())
	counter("relaygate_state_saves_total", "Successful state file saves.", w.StateSaves.Load())
	counter("relaygate_state_save_errors_total", "Failed state file saves.", w.StateErrors.Load())
	counter("relaygate_grants_carried_over_total", "Addresses in the map at start that the state file did not account for (damaged or missing), granted for one grace period.", w.CarriedOver.Load())
	counter("relaygate_carry_over_skipped_total", "Map keys at start not carried over: not an address, ungrantable, excluded, or over -max-entries.", w.CarryOverSkipped.Load())
	if last := w.LastPublishUnix.Load(); last > 0 {
		gauge("relaygate_last_publish_timestamp_seconds", "Unix time of the last successful map publish.", float64(last))
	}
	healthy := 1.0
	if d.mon.health.status() != "" {
		healthy = 0
	}
	gauge("relaygate_healthy", "1 unless the latest map publish failed (as /healthz).", healthy)
	ch <- prometheus.MustNewConstMetric(
		prometheus.NewDesc("relaygate_build_info", "Always 1; the version is a label.", []string{"version"}, nil),
		prometheus.GaugeValue, 1, version())
}

// receiverMetric maps a receiver.Stats.Snapshot name to its metric: message
// counts to received{transport}, drops to dropped{reason}, connections
// refused at accept to connections_refused{reason}, and anything
// else (connection counters, and any counter the receiver adds later) to a
// metric of its own, so nothing the receiver counts is left out.
func receiverMetric(name string) (family, label string) {
	switch name {
	case "udp_messages", "tcp_messages", "tls_messages", "unix_messages":
		return metricReceived, strings.TrimSuffix(name, "_messages")
	case "not_allowed", "host_not_allowed", "too_long", "malformed", "unwanted_program":
		return metricDropped, name
	case "connections_open":
		return "relaygate_receiver_connections_open", ""
	}
	if reason, ok := strings.CutPrefix(name, "connections_refused_"); ok {
		return metricRefused, reason
	}
	return "relaygate_receiver_" + name + "_total", ""
}
