package outputs

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/cdbwriter"
)

// runner is one output's goroutine and what it was handed.
type runner struct {
	out  Output
	opt  Options
	log  zerolog.Logger
	wake chan struct{}
	done chan struct{} // closed when run returns

	mu      sync.Mutex
	latest  []netip.Addr
	version uint64 // of latest; 0: nothing handed yet

	writes, errors atomic.Int64
	failing        atomic.Int64
}

func (r *runner) handed() ([]netip.Addr, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.latest, r.version
}

func (r *runner) run(ctx context.Context, closing <-chan struct{}) {
	var (
		written  uint64 // version last written
		dirty    bool   // the watched file changed: write even the same set
		cleaned  bool   // the temporary files a crash left were removed
		cleanErr string // the last error removing them, logged once
		failures int
		backoff  time.Duration
		retryAt  time.Time
		timer    = time.NewTimer(time.Hour)
	)
	timer.Stop()
	defer timer.Stop()
	var poll <-chan time.Time
	w, watches := r.out.(watcher)
	if watches {
		t := time.NewTicker(r.opt.WatchEvery)
		defer t.Stop()
		poll = t.C
	}
	attempt := func(final bool) {
		addrs, v := r.handed()
		if v == 0 || (v == written && !dirty) {
			return
		}
		if !final && time.Now().Before(retryAt) {
			return // the timer is set for retryAt
		}
		if !cleaned {
			// Before the first write: what a crash left next to the file.
			// A directory that cannot be read is logged; the write says
			// more.
			if n, err := cdbwriter.RemoveStaleTemps(r.out.Path()); err != nil {
				if err.Error() != cleanErr {
					cleanErr = err.Error()
					r.log.Warn().Err(err).Msg("cannot remove temporary files an earlier run left; tried again before each write")
				}
			} else {
				cleaned = true
				if n > 0 {
					r.log.Info().Int("removed", n).Msg("removed temporary files an earlier run left")
				}
			}
		}
		wctx, cancel := context.WithTimeout(ctx, r.opt.Timeout)
		start := time.Now()
		err := r.out.Write(wctx, addrs)
		cancel()
		if err != nil {
			r.errors.Add(1)
			r.failing.Store(1)
			failures++
			if backoff == 0 {
				backoff = r.opt.Retry
			} else {
				backoff = min(2*backoff, r.opt.MaxRetry)
			}
			retryAt = time.Now().Add(backoff)
			if !final {
				timer.Reset(backoff)
			}
			r.log.Error().Err(err).Int("grants", len(addrs)).Int("failures", failures).Dur("retry_in", backoff).
				Msg("output write failed; the MTA keeps the previous file, without the grant changes since; the Postfix map and other outputs are not affected; retrying")
			return
		}
		written, dirty = v, false
		r.writes.Add(1)
		r.failing.Store(0)
		if failures > 0 {
			r.log.Info().Int("failures", failures).Int("grants", len(addrs)).Msg("output write succeeded again; the MTA sees every grant")
		}
		failures, backoff, retryAt = 0, 0, time.Time{}
		r.log.Debug().Int("grants", len(addrs)).Dur("took", time.Since(start)).Msg("output written")
	}
	for {
		select {
		case <-r.wake:
		case <-timer.C:
		case <-poll:
			if !w.Changed() {
				continue
			}
			dirty = true
		case <-closing:
			attempt(true)
			return
		}
		attempt(false)
	}
}
