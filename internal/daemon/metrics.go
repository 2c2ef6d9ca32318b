package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/relaygate/relaygate/internal/metric"
)

// sources is everything the daemon counts, each package describing its own
// series: /metrics and the shutdown log line are both made from it.
func (d *Daemon) sources() []metric.Source {
	return []metric.Source{&d.rstats, d.pipe, d.origin, d.policy, d.journalSource(), d.relpSource(), d.fleetSource(), &d.wstats, d.outputs, metric.SourceFunc(d.samples)}
}

// samples describes the daemon's own series: whether publishing works, and
// how the reloads went.
func (d *Daemon) samples(yield func(metric.Sample)) {
	healthy, lastReload := 1.0, 1.0
	if d.mon.health.status() != "" {
		healthy = 0
	}
	if d.reload.lastFailed.Load() {
		lastReload = 0
	}
	yield(metric.Sample{Name: metric.Prefix + "healthy", Kind: metric.Gauge, Value: healthy,
		Help: "1 unless /healthz reports a problem: the latest map publish failed, or the journal reader is stuck."})
	yield(metric.Sample{Name: metric.Prefix + "last_reload_success", Kind: metric.Gauge, Value: lastReload,
		Help: "1 unless the latest reload (SIGHUP) was rejected and the configuration before it still runs."})
	const reloads, help = metric.Prefix + "reloads_total", "Reloads (SIGHUP) by result: ok (applied) or error (rejected; the running configuration stayed)."
	yield(metric.Sample{Name: reloads, Help: help, Kind: metric.Counter, Label: "result", LabelValue: "ok", Value: float64(d.reload.ok.Load())})
	yield(metric.Sample{Name: reloads, Help: help, Kind: metric.Counter, Label: "result", LabelValue: "error", Value: float64(d.reload.failed.Load())})
}

// logFields is the shutdown log line's counters.
func (d *Daemon) logFields() map[string]any {
	return metric.LogFields(metric.Collect(d.sources()...))
}

// registry returns a registry of its own for one daemon (never the global
// one, so two daemons in one test binary don't collide). Its collector reads
// the sources at scrape time: nothing is counted twice.
func (d *Daemon) registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		sampleCollector(d.sources),
		buildInfo(d.cfg.Version),
		d.mon.publishSeconds,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

func buildInfo(version string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: metric.Prefix + "build_info", Help: "Always 1; the version is a label.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	g.Set(1)
	return g
}

func newPublishHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: metric.Prefix + "publish_duration_seconds",
		Help: "Time to write the map and rename it into place, for each successful publish.",
		// A publish is an fsync or two: milliseconds on a healthy disk,
		// seconds when something is wrong.
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
}

// sampleCollector turns the sources' samples into metrics at scrape time.
type sampleCollector func() []metric.Source

// Describe sends nothing, which makes this an unchecked collector: which
// series exist depends on which daemons have logged and whether the kernel
// reports UDP drops, so they cannot all be described up front.
func (c sampleCollector) Describe(chan<- *prometheus.Desc) {}

func (c sampleCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range metric.Collect(c()...) {
		var labels, values []string
		if s.Label != "" {
			labels, values = append(labels, s.Label), append(values, s.LabelValue)
		}
		if s.Label2 != "" {
			labels, values = append(labels, s.Label2), append(values, s.LabelValue2)
		}
		kind := prometheus.CounterValue
		if s.Kind == metric.Gauge {
			kind = prometheus.GaugeValue
		}
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(s.Name, s.Help, labels, nil), kind, s.Value, values...)
	}
}
