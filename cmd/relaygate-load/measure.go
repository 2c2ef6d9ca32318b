package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/colinmarc/cdb"

	"github.com/relaygate/relaygate/cdbwriter"
)

// measureConfig says what to measure of the relaygate the stream goes to.
type measureConfig struct {
	mapPath    string
	verify     bool
	wait       time.Duration
	probes     int
	probeEvery time.Duration
	rssPID     int
	rssEvery   time.Duration
	rssOut     string
}

func (m *measureConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&m.mapPath, "map", "", "relaygate's cdb map `file`, for -verify and -probes")
	fs.BoolVar(&m.verify, "verify", false, "after sending, wait until every login address of the stream is in -map, and report how many never arrive")
	fs.DurationVar(&m.wait, "wait", 10*time.Second, "how long -verify and -probes wait for the map after the stream ends")
	fs.IntVar(&m.probes, "probes", 0, "send this many probe logins (at most 65535, from fresh addresses in 2001:db8:ffff::/48), one every -probe-every, and time each from its sending to its appearance in -map; with -count 0 nothing else is sent")
	fs.DurationVar(&m.probeEvery, "probe-every", 100*time.Millisecond, "time between two probe logins")
	fs.IntVar(&m.rssPID, "rss-pid", 0, "sample this process's resident memory (VmRSS) during the run and report its course")
	fs.DurationVar(&m.rssEvery, "rss-every", time.Second, "time between two -rss-pid samples")
	fs.StringVar(&m.rssOut, "rss-out", "", "also write the -rss-pid samples to this CSV `file` (seconds,rss_kib)")
}

func (m *measureConfig) check() error {
	if (m.verify || m.probes > 0) && m.mapPath == "" {
		return errors.New("-verify and -probes need -map")
	}
	if m.probes > 0 && m.probeEvery <= 0 {
		return errors.New("-probe-every must be positive")
	}
	return nil
}

// measures runs while the stream is sent.
type measures struct {
	cfg    measureConfig
	probes *probeSet
	rss    *rssSampler
	done   chan struct{}
	wg     sync.WaitGroup
}

func startMeasures(c measureConfig) *measures {
	m := &measures{cfg: c, done: make(chan struct{})}
	if c.probes > 0 {
		m.probes = &probeSet{every: c.probeEvery, max: min(c.probes, 65535), run: rand.Uint64()}
		m.wg.Add(1)
		go func() { defer m.wg.Done(); m.probes.watch(c.mapPath, m.done) }()
	}
	if c.rssPID > 0 {
		m.rss = &rssSampler{pid: c.rssPID, start: time.Now()}
		m.wg.Add(1)
		go func() { defer m.wg.Done(); m.rss.run(c.rssEvery, m.done) }()
	}
	return m
}

func (m *measures) stop() {
	select {
	case <-m.done:
	default:
		close(m.done)
	}
	m.wg.Wait()
}

// report waits for the map as configured, stops the samplers and prints
// what they found.
func (m *measures) report(ctx context.Context, out io.Writer, logins []netip.Addr) error {
	deadline := time.Now().Add(m.cfg.wait)
	var verr error
	if m.cfg.verify {
		verr = verifyMap(ctx, out, m.cfg.mapPath, logins, deadline)
	}
	if m.probes != nil {
		for !m.probes.allSeen() && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	m.stop()
	if m.probes != nil {
		m.probes.report(out)
	}
	if m.rss != nil {
		if err := m.rss.report(out, m.cfg.rssOut); err != nil {
			return err
		}
	}
	return verr
}

// verifyMap waits until every address is in the map, or the deadline.
func verifyMap(ctx context.Context, out io.Writer, path string, addrs []netip.Addr, deadline time.Time) error {
	start := time.Now()
	missing := slices.Clone(addrs)
	for {
		if db, err := cdb.Open(path); err == nil {
			kept := missing[:0]
			for _, a := range missing {
				if v, err := db.Get([]byte(cdbwriter.Key(a))); err != nil || v == nil {
					kept = append(kept, a)
				}
			}
			missing = kept
			db.Close()
		}
		if len(missing) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(missing) == 0 {
		fmt.Fprintf(out, "map: all %d login addresses of the stream granted (%v after the stream ended)\n", len(addrs), time.Since(start).Round(time.Millisecond))
		return nil
	}
	fmt.Fprintf(out, "map: %d of %d login addresses never reached the map (first: %v)\n", len(missing), len(addrs), missing[0])
	return fmt.Errorf("%d logins lost", len(missing))
}

// probeSet sends single logins from fresh addresses and times each from
// just before it is written to the socket to when a map that holds it is
// seen: login received → address in the published map, plus the loopback
// trip and at most the 1 ms the map is polled at.
type probeSet struct {
	every time.Duration
	max   int
	run   uint64
	last  time.Time

	mu     sync.Mutex
	sentAt []time.Time
	seenAt []time.Time
}

// probeAddr is probe i's address: 2001:db8:ffff::/48, apart from the
// stream's logins, with a random run id, so no probe is already in the map
// from an earlier run (an extended grant changes no map, and its probe
// would never be seen).
func (p *probeSet) probeAddr(i int) netip.Addr {
	var b [16]byte
	b[0], b[1], b[2], b[3], b[4], b[5] = 0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff
	binary.BigEndian.PutUint64(b[6:], p.run)
	binary.BigEndian.PutUint16(b[14:], uint16(i+1))
	return netip.AddrFrom16(b)
}

// remaining reports whether probes are still to be sent.
func (p *probeSet) remaining() bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sentAt) < p.max
}

// wait is how long until the next probe is due.
func (p *probeSet) wait() time.Duration {
	if p == nil {
		return 0
	}
	return max(0, time.Until(p.last.Add(p.every)))
}

// due appends the next probe line to buf if one is due.
func (p *probeSet) due(buf []byte) ([]byte, bool) {
	if !p.remaining() || time.Since(p.last) < p.every {
		return buf, false
	}
	p.mu.Lock()
	i := len(p.sentAt)
	p.mu.Unlock()
	buf = append(buf, "<22>Nov 21 10:00:00 mx1 dovecot[812]: imap-login: Login: user=<probe"...)
	buf = strconv.AppendInt(buf, int64(i), 10)
	buf = append(buf, ">, method=PLAIN, rip="...)
	buf = p.probeAddr(i).AppendTo(buf)
	return append(buf, ", lip=192.0.2.1, mpid=4711, TLS"...), true
}

// sent records that the probe due returned is being written now.
func (p *probeSet) sent() {
	p.last = time.Now()
	p.mu.Lock()
	p.sentAt = append(p.sentAt, p.last)
	p.seenAt = append(p.seenAt, time.Time{})
	p.mu.Unlock()
}

func (p *probeSet) allSeen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.seenAt {
		if t.IsZero() {
			return false
		}
	}
	return len(p.sentAt) > 0
}

// watch polls the map's inode, size and time every millisecond; when the
// map was replaced, it looks up every probe not yet seen.
func (p *probeSet) watch(path string, done <-chan struct{}) {
	var last syscall.Stat_t
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		var st syscall.Stat_t
		if syscall.Stat(path, &st) != nil || (st.Ino == last.Ino && st.Size == last.Size && st.Mtim == last.Mtim) {
			continue
		}
		now := time.Now()
		db, err := cdb.Open(path)
		if err != nil {
			continue
		}
		last = st
		p.mu.Lock()
		for i := range p.sentAt {
			if p.seenAt[i].IsZero() {
				if v, err := db.Get([]byte(p.probeAddr(i).String())); err == nil && v != nil {
					p.seenAt[i] = now
				}
			}
		}
		p.mu.Unlock()
		db.Close()
	}
}

func (p *probeSet) report(out io.Writer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var lat []time.Duration
	for i, at := range p.seenAt {
		if !at.IsZero() {
			lat = append(lat, at.Sub(p.sentAt[i]))
		}
	}
	fmt.Fprintf(out, "probes: %d sent, %d seen in the map", len(p.sentAt), len(lat))
	if len(lat) == 0 {
		fmt.Fprintln(out)
		return
	}
	slices.Sort(lat)
	q := func(f float64) time.Duration {
		return lat[max(0, int(f*float64(len(lat))+0.999999)-1)].Round(100 * time.Microsecond)
	}
	fmt.Fprintf(out, "; login → map latency p50 %v, p90 %v, p99 %v, max %v\n", q(0.5), q(0.9), q(0.99), lat[len(lat)-1].Round(100*time.Microsecond))
}

// rssSampler follows a process's VmRSS.
type rssSampler struct {
	pid     int
	start   time.Time
	at      []time.Duration
	kib     []int64
	lastErr error
}

func (r *rssSampler) run(every time.Duration, done <-chan struct{}) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if kib, err := vmRSS(r.pid); err == nil {
			r.at = append(r.at, time.Since(r.start))
			r.kib = append(r.kib, kib)
		} else {
			r.lastErr = err
		}
		select {
		case <-done:
			return
		case <-tick.C:
		}
	}
}

func vmRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(rest)
			if len(f) > 0 {
				return strconv.ParseInt(string(f[0]), 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// report prints the first, largest and last sample and the trend of the
// second half (a least-squares slope), where a steady process shows none.
func (r *rssSampler) report(out io.Writer, csvPath string) error {
	if len(r.kib) == 0 {
		fmt.Fprintf(out, "rss of pid %d: no samples (%v)\n", r.pid, r.lastErr)
		return nil
	}
	mib := func(k int64) float64 { return float64(k) / 1024 }
	fmt.Fprintf(out, "rss of pid %d: %d samples over %v; first %.1f MiB, max %.1f MiB, last %.1f MiB",
		r.pid, len(r.kib), r.at[len(r.at)-1].Round(time.Second), mib(r.kib[0]), mib(slices.Max(r.kib)), mib(r.kib[len(r.kib)-1]))
	if half := len(r.kib) / 2; len(r.kib)-half >= 3 {
		var sx, sy, sxx, sxy float64
		n := float64(len(r.kib) - half)
		for i := half; i < len(r.kib); i++ {
			x, y := r.at[i].Minutes(), mib(r.kib[i])
			sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
		}
		if d := n*sxx - sx*sx; d > 0 {
			fmt.Fprintf(out, "; trend of the second half %+.2f MiB/min", (n*sxy-sx*sy)/d)
		}
	}
	fmt.Fprintln(out)
	if csvPath == "" {
		return nil
	}
	f, err := os.Create(csvPath)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	w.WriteString("seconds,rss_kib\n")
	for i := range r.kib {
		fmt.Fprintf(w, "%.1f,%d\n", r.at[i].Seconds(), r.kib[i])
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
