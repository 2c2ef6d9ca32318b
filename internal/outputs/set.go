package outputs

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/internal/metric"
)

// Options tune a Set.
type Options struct {
	Logger zerolog.Logger
	// Retry is the first wait after a failed write, doubled after each
	// further failure up to MaxRetry (defaults 1s and 30s), as the map's.
	Retry, MaxRetry time.Duration
	// Timeout bounds one write, a program it runs included (default 2m).
	Timeout time.Duration
	// WatchEvery is how often a static rules file is looked at (default 5s).
	WatchEvery time.Duration
}

// Set runs outputs, one goroutine each. Publish hands every output the
// same set; Close writes what is still pending and stops them. A nil Set
// does nothing.
type Set struct {
	runners []*runner
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
	closing chan struct{}
	once    sync.Once
}

// Start starts a goroutine for each output. Nothing is written until the
// first Publish.
func Start(outs []Output, o Options) *Set {
	if len(outs) == 0 {
		return nil
	}
	if o.Retry <= 0 {
		o.Retry = time.Second
	}
	if o.MaxRetry <= 0 {
		o.MaxRetry = 30 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.WatchEvery <= 0 {
		o.WatchEvery = 5 * time.Second
	}
	s := &Set{closing: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, out := range outs {
		r := &runner{out: out, opt: o, wake: make(chan struct{}, 1), done: make(chan struct{}),
			log: o.Logger.With().Str("component", "outputs").Str("output", out.Kind()).Str("file", out.Path()).Logger()}
		if l, ok := out.(logSetter); ok {
			l.setLogger(r.log)
		}
		s.runners = append(s.runners, r)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(r.done)
			r.run(s.ctx, s.closing)
		}()
	}
	return s
}

// Publish hands addrs to every output and returns at once: an output
// still writing an older set writes this one next, skipping any set in
// between. addrs must not change afterwards.
func (s *Set) Publish(addrs []netip.Addr) {
	if s == nil {
		return
	}
	for _, r := range s.runners {
		r.mu.Lock()
		r.latest, r.version = addrs, r.version+1
		r.mu.Unlock()
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// Close writes, once more and whatever the back-off says, each output
// that has not written the latest set, waits for them up to timeout, then
// cancels what still runs (a hung program) and returns. A file left
// unwritten is complete, only older: the next start writes it.
func (s *Set) Close(timeout time.Duration) {
	if s == nil {
		return
	}
	s.once.Do(func() {
		close(s.closing)
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(timeout):
			for _, r := range s.runners {
				select {
				case <-r.done:
					continue // finished in time
				default:
				}
				if timeout > 0 {
					r.log.Warn().Dur("waited", timeout).Msg("output still writing at exit; its file stays as it was (complete), and the next start writes it")
				}
			}
		}
		s.cancel()
	})
}

// Samples describes each output's counters, labelled by its kind.
func (s *Set) Samples(yield func(metric.Sample)) {
	if s == nil {
		return
	}
	for _, r := range s.runners {
		k := r.out.Kind()
		yield(metric.Sample{Name: metric.Prefix + "output_writes_total", Kind: metric.Counter, Label: "output", LabelValue: k,
			Help: "Successful writes of each output for another MTA (tcprules, sendmail, opensmtpd, courier).", Value: float64(r.writes.Load())})
		yield(metric.Sample{Name: metric.Prefix + "output_write_errors_total", Kind: metric.Counter, Label: "output", LabelValue: k,
			Help: "Failed writes of each output (its previous file stayed in place; retried with back-off).", Value: float64(r.errors.Load())})
		yield(metric.Sample{Name: metric.Prefix + "output_failing", Kind: metric.Gauge, Label: "output", LabelValue: k,
			Help: "1 while the latest write of the output failed.", Value: float64(r.failing.Load())})
		if x, ok := r.out.(sampler); ok {
			x.samples(yield)
		}
	}
}
