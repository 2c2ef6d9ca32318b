// Package metric is the one vocabulary in which relaygate's packages describe
// what they count. Each package that counts describes every one of its
// series once, as Samples; the daemon's shutdown log line and its Prometheus
// endpoint are both derived from those descriptions, so a counter added in
// one place appears in both and cannot be named two ways.
package metric

import (
	"sort"
	"strings"
)

// Kind says how a sample's value behaves.
type Kind uint8

const (
	// Counter only grows while the process runs.
	Counter Kind = iota
	// Gauge goes up and down.
	Gauge
)

// Sample is one value of one series. Label and LabelValue are both empty
// for a series without a label; Label2 and LabelValue2 likewise for a
// series with at most one (only relaygate_events_total, by daemon and kind,
// has two). A label value always comes from a fixed set (a transport, a
// reason, a parser name), never from message text.
type Sample struct {
	Name        string // full Prometheus name, e.g. "relaygate_messages_received_total"
	Help        string
	Kind        Kind
	Label       string
	LabelValue  string
	Value       float64
	Label2      string // a second label, set only together with Label
	LabelValue2 string
}

// Source is anything that can describe its current counts.
type Source interface {
	Samples(yield func(Sample))
}

// SourceFunc adapts a function to Source.
type SourceFunc func(yield func(Sample))

// Samples calls f.
func (f SourceFunc) Samples(yield func(Sample)) { f(yield) }

// Prefix is the namespace of every relaygate series.
const Prefix = "relaygate_"

// LogKey is the sample's name in the shutdown log line: the Prometheus name
// without the namespace and without "_total", and the label values appended.
// relaygate_messages_received_total{transport="udp"} is messages_received_udp.
func (s Sample) LogKey() string {
	k := strings.TrimSuffix(strings.TrimPrefix(s.Name, Prefix), "_total")
	if s.LabelValue != "" {
		k += "_" + s.LabelValue
	}
	if s.LabelValue2 != "" {
		k += "_" + s.LabelValue2
	}
	return k
}

// Collect gathers every sample of every source, in the sources' order.
func Collect(sources ...Source) []Sample {
	var out []Sample
	for _, src := range sources {
		if src != nil {
			src.Samples(func(s Sample) { out = append(out, s) })
		}
	}
	return out
}

// LogFields turns samples into the key → value map of the shutdown log
// line. Keys are sorted by the caller's logger; ties (two sources describing
// the same series) are summed, which never happens for a well-formed set.
func LogFields(samples []Sample) map[string]any {
	out := make(map[string]any, len(samples))
	for _, s := range samples {
		k := s.LogKey()
		if v, ok := out[k].(float64); ok {
			out[k] = v + s.Value
			continue
		}
		out[k] = s.Value
	}
	return out
}

// Names returns the distinct series names, sorted; tests use it to check
// that documentation lists every series.
func Names(samples []Sample) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range samples {
		if !seen[s.Name] {
			seen[s.Name] = true
			out = append(out, s.Name)
		}
	}
	sort.Strings(out)
	return out
}
