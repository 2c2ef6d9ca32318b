package daemon

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/internal/metric"
	"github.com/relaygate/relaygate/internal/origin"
	"github.com/relaygate/relaygate/parsers"
	"github.com/relaygate/relaygate/receiver"
)

// loadOriginPolicy builds the origin policy of one configuration: the mode
// from -origin, the pins and uid_min from -origin-file (checked against
// the daemon names set's parsers can produce), else UID_MIN from
// login.defs.
func loadOriginPolicy(cfg OriginConfig, set *parsers.Set) (origin.Policy, error) {
	p := origin.Policy{Mode: cfg.Mode}
	if cfg.Mode == origin.ModeOff {
		return p, nil
	}
	if cfg.File != "" {
		var known func(string) bool
		if set != nil {
			daemons := set.Daemons()
			known = func(d string) bool { return slices.Contains(daemons, d) }
		}
		fc, err := origin.LoadFile(cfg.File, known)
		if err != nil {
			return p, fmt.Errorf("-origin-file: %w", err)
		}
		p.Pins, p.UIDMin = fc.Pins, fc.UIDMin
	}
	if p.UIDMin == 0 {
		defs := cfg.LoginDefs
		if defs == "" {
			defs = origin.LoginDefs
		}
		uidMin, err := origin.LoadUIDMin(defs)
		if err != nil {
			return p, fmt.Errorf("-origin: %w", err)
		}
		p.UIDMin = uidMin
	}
	return p, nil
}

// originGate asks the origin policy about each recognised line, counts the
// refusals by reason, and logs them, rate-limited and without the line's
// text: a forger's text is the forger's, and a flood of it must not flood
// the log.
type originGate struct {
	policy  origin.Policy // the pipeline goroutine's; replaced on Reload
	log     zerolog.Logger
	refused map[string]*atomic.Int64 // by reason; every origin.Reasons key, made once

	mu         sync.Mutex
	lastLog    time.Time
	suppressed int64
}

func newOriginGate(p origin.Policy, log zerolog.Logger) *originGate {
	g := &originGate{policy: p, log: log, refused: make(map[string]*atomic.Int64, len(origin.Reasons))}
	for _, r := range origin.Reasons {
		g.refused[r] = new(atomic.Int64)
	}
	return g
}

// originLogEvery is the least time between two refusal log lines.
const originLogEvery = 10 * time.Second

// admit is parsers.Pipeline.StepAdmit's check for message m.
func (g *originGate) admit(m *receiver.Message, daemon string, now time.Time) string {
	ok, reason := g.policy.Check(daemon, m.Origin)
	if ok {
		return ""
	}
	if c := g.refused[reason]; c != nil {
		c.Add(1)
	}
	g.mu.Lock()
	if !g.lastLog.IsZero() && now.Sub(g.lastLog) < originLogEvery {
		g.suppressed++
		g.mu.Unlock()
		return reason
	}
	suppressed := g.suppressed
	g.lastLog, g.suppressed = now, 0
	g.mu.Unlock()
	g.log.Info().Str("daemon", daemon).Str("program", m.Program).Str("host", m.Host).Str("peer", m.Peer).
		Str("reason", reason).Str("origin", m.Origin.Origin().String()).Int64("suppressed_before", suppressed).
		Msg("login line not admitted: its writer is not the mail daemon (-origin)")
	return reason
}

// Samples describes the refusals, every reason exported from 0.
func (g *originGate) Samples(yield func(metric.Sample)) {
	for _, reason := range origin.Reasons {
		yield(metric.Sample{
			Name: metric.Prefix + "origin_refused_total", Kind: metric.Counter,
			Help:  "Recognised login and logout lines not admitted because of their origin (-origin), by reason.",
			Label: "reason", LabelValue: reason, Value: float64(g.refused[reason].Load()),
		})
	}
}
