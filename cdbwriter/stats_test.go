package cdbwriter

import (
	"slices"
	"testing"

	"github.com/relaygate/relaygate/internal/metric"
)

// TestStatsSamples: every counter is described once, under the Prometheus
// name README and the dashboards know, and the last publish's time only
// once there was one (a zero timestamp would read as 1970).
func TestStatsSamples(t *testing.T) {
	var st Stats
	names := func() []string { return metric.Names(metric.Collect(&st)) }
	want := []string{
		"relaygate_carry_over_skipped_total", "relaygate_grants", "relaygate_grants_added_total",
		"relaygate_grants_carried_over_total", "relaygate_grants_evicted_total", "relaygate_grants_excluded_total",
		"relaygate_grants_expired_total", "relaygate_grants_extended_total", "relaygate_publish_errors_total",
		"relaygate_publishes_total", "relaygate_state_save_errors_total", "relaygate_state_saves_total",
	}
	if got := names(); !slices.Equal(got, want) {
		t.Fatalf("series %q, want %q", got, want)
	}
	st.Granted.Add(3)
	st.Active.Store(2)
	st.LastPublishUnix.Store(1_800_000_000)
	got := map[string]metric.Sample{}
	for _, s := range metric.Collect(&st) {
		if _, twice := got[s.Name]; twice || s.Help == "" || s.Label != "" {
			t.Errorf("sample %+v: described twice, without help, or with a label", s)
		}
		got[s.Name] = s
	}
	for name, w := range map[string]metric.Sample{
		"relaygate_grants":                         {Kind: metric.Gauge, Value: 2},
		"relaygate_grants_added_total":             {Kind: metric.Counter, Value: 3},
		"relaygate_last_publish_timestamp_seconds": {Kind: metric.Gauge, Value: 1_800_000_000},
	} {
		if s := got[name]; s.Kind != w.Kind || s.Value != w.Value {
			t.Errorf("%s = %+v, want kind %v value %v", name, s, w.Kind, w.Value)
		}
	}
	if s := got["relaygate_grants_added_total"]; s.LogKey() != "grants_added" {
		t.Errorf("log key %q", s.LogKey())
	}
}
