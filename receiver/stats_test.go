package receiver

import (
	"reflect"
	"regexp"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/relaygate/relaygate/internal/metric"
)

// samples is s.Samples keyed as Prometheus prints a series:
// name{label="value"}.
func samples(s *Stats) map[string]float64 {
	out := make(map[string]float64)
	s.Samples(func(m metric.Sample) {
		k := m.Name
		if m.Label != "" {
			k += "{" + m.Label + `="` + m.LabelValue + `"}`
		}
		out[k] = m.Value
	})
	return out
}

// TestStatsSamples: every counter comes out as exactly one series, under
// the names and labels /metrics has always used, with one help text per
// name.
func TestStatsSamples(t *testing.T) {
	var s Stats
	want := map[string]*atomic.Int64{
		`relaygate_messages_received_total{transport="udp"}`:          &s.udp,
		`relaygate_messages_received_total{transport="tcp"}`:          &s.tcp,
		`relaygate_messages_received_total{transport="tls"}`:          &s.tls,
		`relaygate_messages_received_total{transport="unix"}`:         &s.unix,
		`relaygate_messages_dropped_total{reason="not_allowed"}`:      &s.notAllowed,
		`relaygate_messages_dropped_total{reason="host_not_allowed"}`: &s.hostNotAllowed,
		`relaygate_messages_dropped_total{reason="too_long"}`:         &s.tooLong,
		`relaygate_messages_dropped_total{reason="malformed"}`:        &s.malformed,
		`relaygate_messages_dropped_total{reason="unwanted_program"}`: &s.unwanted,
		`relaygate_connections_refused_total{reason="max_conns"}`:     &s.connsRefused,
		`relaygate_connections_refused_total{reason="per_host"}`:      &s.connsRefusedPerHost,
		`relaygate_connections_refused_total{reason="not_allowed"}`:   &s.connsNotAllowed,
		"relaygate_receiver_connections_accepted_total":               &s.connectionsAccepted,
		"relaygate_receiver_connections_open":                         &s.connectionsOpen,
		"relaygate_receiver_idle_closed_total":                        &s.idleClosed,
		"relaygate_receiver_tls_refused_total":                        &s.tlsRefused,
	}
	// Every counter in the struct is in the table, each with a value of
	// its own, so a series reading the wrong counter shows.
	counters := 0
	st := reflect.TypeFor[Stats]()
	for i := range st.NumField() {
		if st.Field(i).Type == reflect.TypeFor[atomic.Int64]() {
			counters++
		}
	}
	if len(want) != counters {
		t.Fatalf("the test knows %d series for %d counters", len(want), counters)
	}
	n := int64(0)
	for _, c := range want {
		n++
		c.Store(n)
	}
	got := samples(&s)
	if len(got) != len(want) {
		t.Errorf("Samples has %d series, want %d: %v", len(got), len(want), got)
	}
	for series, c := range want {
		if v, ok := got[series]; !ok || v != float64(c.Load()) {
			t.Errorf("%s = %v (present %v), want %d", series, v, ok, c.Load())
		}
	}
	help := map[string]string{}
	name := regexp.MustCompile(`^relaygate_[a-z]+(_[a-z]+)*$`)
	s.Samples(func(m metric.Sample) {
		if !name.MatchString(m.Name) {
			t.Errorf("name %q", m.Name)
		}
		if m.Help == "" {
			t.Errorf("%s: no help", m.Name)
		}
		if h, seen := help[m.Name]; seen && h != m.Help {
			t.Errorf("%s: two help texts", m.Name)
		}
		help[m.Name] = m.Help
		if gauge := m.Name == "relaygate_receiver_connections_open"; gauge != (m.Kind == metric.Gauge) {
			t.Errorf("%s: kind %v", m.Name, m.Kind)
		}
	})
}

// TestUDPSocketDropsSample: the kernel's drop counter of the receiver's
// own UDP socket is a series while the socket is open; at Close its last
// value is kept (the shutdown line is made after Close), and the address's
// next socket (a takeover's) is never read as ours.
func TestUDPSocketDropsSample(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/self/net/udp is Linux's")
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", ":0"} {
		h := start(t, Config{UDP: addr})
		if _, ok := samples(h.stats)["relaygate_udp_socket_drops_total"]; !ok {
			t.Errorf("%s: no relaygate_udp_socket_drops_total while listening", addr)
		}
		h.r.Close()
		if v, ok := samples(h.stats)["relaygate_udp_socket_drops_total"]; !ok || v != 0 {
			t.Errorf("%s: after Close the series is %v (present %v), want the closed socket's 0", addr, v, ok)
		}
		if h.stats.udpSocket.Load() != nil {
			t.Errorf("%s: the closed socket's address is still read", addr)
		}
		h.stop()
	}
}
