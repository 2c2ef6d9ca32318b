package cdbwriter

import (
	"sync/atomic"

	"github.com/relaygate/relaygate/internal/metric"
)

// Stats counts what the Service did. All fields are safe for concurrent
// use; Samples describes each of them as the daemon exports it.
type Stats struct {
	Granted, Extended, Excluded, Expired atomic.Int64
	Evicted                              atomic.Int64 // grants dropped because -max-entries was reached
	Active                               atomic.Int64
	Publishes, PublishErrors             atomic.Int64
	StateSaves, StateErrors              atomic.Int64 // appends and whole writes of the state file
	LastPublishUnix                      atomic.Int64
	CarriedOver                          atomic.Int64 // map addresses the state did not account for, granted for one grace period at start
	CarryOverSkipped                     atomic.Int64 // map keys not carried over: not an address, ungrantable, excluded, or over -max-entries
}

// Samples describes every counter once, with its Prometheus name and help;
// the last publish's time only once there was one.
func (st *Stats) Samples(yield func(metric.Sample)) {
	gauge := func(name, help string, v int64) {
		yield(metric.Sample{Name: name, Help: help, Kind: metric.Gauge, Value: float64(v)})
	}
	counter := func(name, help string, v int64) {
		yield(metric.Sample{Name: name, Help: help, Kind: metric.Counter, Value: float64(v)})
	}
	gauge("relaygate_grants", "Addresses in the map now.", st.Active.Load())
	counter("relaygate_grants_added_total", "Logins that added an address to the map.", st.Granted.Load())
	counter("relaygate_grants_extended_total", "Logins that extended an existing grant.", st.Extended.Load())
	counter("relaygate_grants_excluded_total", "Logins not granted because the address is excluded (-exclude, mynetworks).", st.Excluded.Load())
	counter("relaygate_grants_expired_total", "Grants that expired.", st.Expired.Load())
	counter("relaygate_grants_evicted_total", "Grants evicted because -max-entries was reached.", st.Evicted.Load())
	counter("relaygate_publishes_total", "Successful map publishes.", st.Publishes.Load())
	counter("relaygate_publish_errors_total", "Failed map publishes (the previous map stayed in place).", st.PublishErrors.Load())
	counter("relaygate_state_saves_total", "Successful state file saves.", st.StateSaves.Load())
	counter("relaygate_state_save_errors_total", "Failed state file saves.", st.StateErrors.Load())
	counter("relaygate_grants_carried_over_total", "Addresses in the map at start that the state file did not account for (damaged or missing), granted for one grace period.", st.CarriedOver.Load())
	counter("relaygate_carry_over_skipped_total", "Map keys at start not carried over: not an address, ungrantable, excluded, or over -max-entries.", st.CarryOverSkipped.Load())
	if last := st.LastPublishUnix.Load(); last > 0 {
		gauge("relaygate_last_publish_timestamp_seconds", "Unix time of the last successful map publish.", last)
	}
}
