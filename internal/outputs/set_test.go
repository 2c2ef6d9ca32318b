package outputs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/colinmarc/cdb"
	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/internal/metric"
	"github.com/relaygate/relaygate/internal/testutil"
)

func quick(t testing.TB) Options {
	return Options{Logger: zerolog.New(zerolog.NewTestWriter(t)), Retry: 10 * time.Millisecond,
		MaxRetry: 40 * time.Millisecond, WatchEvery: 10 * time.Millisecond}
}

func sample(s *Set, name, kind string) float64 {
	for _, x := range metric.Collect(s) {
		if x.Name == metric.Prefix+name && x.LabelValue == kind {
			return x.Value
		}
	}
	return -1
}

// TestOneBrokenOutputStopsNoOther: the tcprules output's directory is
// read-only; the OpenSMTPD table next to it is written at once, the
// tcprules failures are counted and retried, and once the directory is
// writable again the cdb appears without another Publish.
func TestOneBrokenOutputStopsNoOther(t *testing.T) {
	ro, rw := t.TempDir(), t.TempDir()
	outs, err := Build(Config{TCPRules: filepath.Join(ro, "tcp.cdb"), OpenSMTPDTable: filepath.Join(rw, "relay"), OpenSMTPDUpdate: "true"})
	if err != nil {
		t.Fatal(err)
	}
	writable := testutil.ReadOnlyDir(t, ro)
	s := Start(outs, quick(t))
	defer s.Close(time.Second)
	s.Publish(addrs(t, "192.0.2.10"))
	testutil.Eventually(t, 2*time.Second, "the OpenSMTPD table", func() bool {
		b, _ := os.ReadFile(filepath.Join(rw, "relay"))
		return strings.Contains(string(b), "192.0.2.10\n")
	})
	testutil.Eventually(t, 2*time.Second, "tcprules failures retried", func() bool {
		return sample(s, "output_write_errors_total", "tcprules") >= 3
	})
	if sample(s, "output_failing", "tcprules") != 1 || sample(s, "output_failing", "opensmtpd") != 0 {
		t.Error("output_failing gauges wrong")
	}
	writable()
	testutil.Eventually(t, 2*time.Second, "the tcprules cdb once the directory is writable", func() bool {
		db, err := cdb.Open(filepath.Join(ro, "tcp.cdb"))
		if err != nil {
			return false
		}
		defer db.Close()
		v, _ := db.Get([]byte("192.0.2.10"))
		return v != nil
	})
	if sample(s, "output_failing", "tcprules") != 0 || sample(s, "output_writes_total", "opensmtpd") != 1 {
		t.Error("after recovery: gauges or counters wrong")
	}
}

// slowOutput records what it is asked to write, slowly; with hold, every
// write first waits until hold is closed.
type slowOutput struct {
	mu     sync.Mutex
	writes [][]netip.Addr
	delay  time.Duration
	hold   chan struct{}
	fail   atomic.Bool
}

func (o *slowOutput) Kind() string { return "slow" }
func (o *slowOutput) Path() string { return "/nonexistent/slow" }
func (o *slowOutput) Write(_ context.Context, a []netip.Addr) error {
	if o.hold != nil {
		<-o.hold
	}
	time.Sleep(o.delay)
	if o.fail.Load() {
		return errors.New("refused")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writes = append(o.writes, a)
	return nil
}

// TestLatestWinsAndCloseWrites: a slow output skips the sets handed while
// it wrote, writes the latest, and Close writes a pending set even in
// back-off.
func TestLatestWinsAndCloseWrites(t *testing.T) {
	// The first write is held until all 20 sets are handed, however the
	// scheduler runs the two goroutines: at most it and the latest follow.
	o := &slowOutput{delay: 30 * time.Millisecond, hold: make(chan struct{})}
	s := Start([]Output{o}, quick(t))
	for i := range 20 {
		s.Publish(addrs(t, fmt.Sprintf("192.0.2.%d", i+1)))
	}
	close(o.hold)
	testutil.Eventually(t, 2*time.Second, "the last set written", func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return len(o.writes) > 0 && o.writes[len(o.writes)-1][0].String() == "192.0.2.20"
	})
	o.mu.Lock()
	n := len(o.writes)
	o.mu.Unlock()
	if n > 2 {
		t.Errorf("%d writes for 20 sets handed while one was written", n)
	}
	o.fail.Store(true)
	s.Publish(addrs(t, "198.51.100.1"))
	testutil.Eventually(t, 2*time.Second, "a failure", func() bool { return sample(s, "output_write_errors_total", "slow") > 0 })
	o.fail.Store(false)
	s.Publish(addrs(t, "198.51.100.2"))
	s.Close(2 * time.Second)
	o.mu.Lock()
	defer o.mu.Unlock()
	if last := o.writes[len(o.writes)-1]; last[0].String() != "198.51.100.2" {
		t.Errorf("last write %v, want the set handed before Close", last)
	}
}

// TestStaticRulesChangeRewrites: editing the static file rewrites the cdb
// with the same grants, no Publish needed; after a broken edit the grants
// still move, with the site's rules that last parsed, and the error is
// counted.
func TestStaticRulesChangeRewrites(t *testing.T) {
	dir := t.TempDir()
	static, out := filepath.Join(dir, "tcp.smtp"), filepath.Join(dir, "tcp.smtp.cdb")
	os.WriteFile(static, []byte("127.:allow,RELAYCLIENT=\"\"\n"), 0o644)
	outs, err := Build(Config{TCPRules: out, TCPRulesStatic: static})
	if err != nil {
		t.Fatal(err)
	}
	s := Start(outs, quick(t))
	defer s.Close(time.Second)
	s.Publish(addrs(t, "192.0.2.10"))
	get := func(key string) string {
		db, err := cdb.Open(out)
		if err != nil {
			return "<none>"
		}
		defer db.Close()
		v, _ := db.Get([]byte(key))
		return string(v)
	}
	testutil.Eventually(t, 2*time.Second, "first write", func() bool { return get("192.0.2.10") != "" })
	os.WriteFile(static, []byte("127.:allow,RELAYCLIENT=\"\"\n192.0.2.10:deny\n"), 0o644)
	testutil.Eventually(t, 2*time.Second, "the site's deny, from the edited file", func() bool { return get("192.0.2.10") == "D\x00" })
	os.WriteFile(static, []byte("127.:allow RELAYCLIENT\n"), 0o644)
	testutil.Eventually(t, 2*time.Second, "the broken edit counted", func() bool { return sample(s, "tcprules_static_errors_total", "") == 1 })
	if get("192.0.2.10") != "D\x00" || sample(s, "tcprules_static_stale", "") != 1 {
		t.Error("a broken static file replaced the site's rules in the cdb, or is not reported")
	}
	s.Publish(addrs(t, "192.0.2.11"))
	testutil.Eventually(t, 2*time.Second, "a new grant despite the broken file", func() bool { return get("192.0.2.11") == "+RELAYCLIENT=\x00" })
	if get("192.0.2.10") != "D\x00" || get("127.") != "+RELAYCLIENT=\x00" || sample(s, "output_failing", "tcprules") != 0 {
		t.Error("the rules that last parsed were not kept, or the output is reported failing")
	}
}

// TestBadStaticAtStartFails: a static file tcprules would refuse does not
// stop the start: the output fails (the cdb left as it was), naming the
// file and line, next to an OpenSMTPD table written at once; once the
// file is fixed the cdb is written with no Publish.
func TestBadStaticAtStartFails(t *testing.T) {
	dir := t.TempDir()
	static := filepath.Join(dir, "tcp.smtp")
	os.WriteFile(static, []byte("# ok\n127.:allow\n10.:permit\n"), 0o644)
	out := filepath.Join(dir, "x.cdb")
	os.WriteFile(out, []byte("the previous run's cdb"), 0o644)
	outs, err := Build(Config{TCPRules: out, TCPRulesStatic: static, OpenSMTPDTable: filepath.Join(dir, "relay"), OpenSMTPDUpdate: "true"})
	if err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	o := quick(t)
	o.Logger = zerolog.New(&log)
	s := Start(outs, o)
	defer s.Close(time.Second)
	s.Publish(addrs(t, "192.0.2.10"))
	testutil.Eventually(t, 2*time.Second, "the failure retried", func() bool { return sample(s, "output_write_errors_total", "tcprules") >= 2 })
	testutil.Eventually(t, 2*time.Second, "the OpenSMTPD table", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "relay"))
		return strings.Contains(string(b), "\n192.0.2.10\n")
	})
	if b, _ := os.ReadFile(out); string(b) != "the previous run's cdb" {
		t.Error("the cdb was replaced without the site's rules")
	}
	if l := log.String(); !strings.Contains(l, "line 3") || !strings.Contains(l, static) {
		t.Errorf("the log does not name the file and line:\n%s", l)
	}
	os.WriteFile(static, []byte("# ok\n127.:allow\n10.:deny\n"), 0o644)
	testutil.Eventually(t, 2*time.Second, "the cdb once the file parses", func() bool {
		db, err := cdb.Open(out)
		if err != nil {
			return false
		}
		defer db.Close()
		v, _ := db.Get([]byte("192.0.2.10"))
		d, _ := db.Get([]byte("10."))
		return string(v) == "+RELAYCLIENT=\x00" && string(d) == "D\x00"
	})
	testutil.Eventually(t, time.Second, "output_failing back to 0", func() bool { return sample(s, "output_failing", "tcprules") == 0 })
}

// TestMissingMakemapFailsTheOutputOnly: without makemap the sendmail
// output starts and fails (counted, retried), the others are written, and
// once makemap appears the map is built.
func TestMissingMakemapFailsTheOutputOnly(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", filepath.Join(dir, "bin"))
	saved := makemapPaths
	makemapPaths = []string{filepath.Join(dir, "nowhere", "makemap")}
	defer func() { makemapPaths = saved }()
	outs, err := Build(Config{SendmailMap: filepath.Join(dir, "relay"), OpenSMTPDTable: filepath.Join(dir, "table"), OpenSMTPDUpdate: "/bin/true"})
	if err != nil {
		t.Fatalf("Build refused a host without makemap: %v", err)
	}
	s := Start(outs, quick(t))
	defer s.Close(time.Second)
	s.Publish(addrs(t, "192.0.2.10"))
	testutil.Eventually(t, 2*time.Second, "sendmail failures retried", func() bool { return sample(s, "output_write_errors_total", "sendmail") >= 2 })
	testutil.Eventually(t, 2*time.Second, "the OpenSMTPD table", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "table"))
		return strings.Contains(string(b), "\n192.0.2.10\n")
	})
	// A stand-in makemap that writes what it reads to NAME.db.
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	write(t, filepath.Join(dir, "bin"), "makemap", "#!/bin/sh\nexec /bin/cat > \"$2.db\"\n")
	os.Chmod(filepath.Join(dir, "bin", "makemap"), 0o755)
	testutil.Eventually(t, 2*time.Second, "the map once makemap is there", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "relay.db"))
		return string(b) == "192.0.2.10\tOK\n"
	})
}

// syncBuffer is a log sink for several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// hungOutput writes until its context ends.
type hungOutput struct{ slowOutput }

func (o *hungOutput) Kind() string { return "hung" }
func (o *hungOutput) Write(ctx context.Context, _ []netip.Addr) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestCloseNamesOnlyUnfinished: Close's warning names the output still
// writing, not those that finished in time.
func TestCloseNamesOnlyUnfinished(t *testing.T) {
	var log syncBuffer
	o := quick(t)
	o.Logger = zerolog.New(&log)
	done, hung := &slowOutput{}, &hungOutput{}
	s := Start([]Output{done, hung}, o)
	s.Publish(addrs(t, "192.0.2.10"))
	testutil.Eventually(t, 2*time.Second, "the quick output written", func() bool { return sample(s, "output_writes_total", "slow") == 1 })
	s.Close(200 * time.Millisecond)
	l := log.String()
	if n := strings.Count(l, "output still writing at exit"); n != 1 || !strings.Contains(l, `"output":"hung"`) {
		t.Errorf("%d warnings, want one, for the hung output:\n%s", n, l)
	}
	for _, line := range strings.Split(l, "\n") {
		if strings.Contains(line, "still writing") && strings.Contains(line, `"output":"slow"`) {
			t.Errorf("warned about an output that had finished: %s", line)
		}
	}
}

// TestNoReaderSeesPartialFile: readers loop over each output's file while
// it is rewritten with sets of different sizes; every read is one whole
// set that was published, never a torn or empty file.
func TestNoReaderSeesPartialFile(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{TCPRules: filepath.Join(dir, "tcp.cdb"), OpenSMTPDTable: filepath.Join(dir, "relay"), OpenSMTPDUpdate: "true"}
	if _, err := findMakemap(); err == nil {
		cfg.SendmailMap = filepath.Join(dir, "relaygate")
	}
	outs, err := Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{1, 3000, 7, 1500, 0, 2500}
	sets := make([][]netip.Addr, len(sizes))
	for i, n := range sizes {
		for j := range n {
			sets[i] = append(sets[i], netip.AddrFrom4([4]byte{10, byte(i), byte(j >> 8), byte(j)}))
		}
	}
	// Each output's file, written once, before the readers start.
	for _, o := range outs {
		if err := o.Write(context.Background(), sets[0]); err != nil {
			t.Fatal(err)
		}
	}
	valid := map[int]bool{}
	for _, n := range sizes {
		valid[n] = true
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads atomic.Int64
	check := func(name string, count func() (int, error)) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, err := count()
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			if !valid[n] {
				t.Errorf("%s: a reader saw %d entries, which no published set has", name, n)
				return
			}
			reads.Add(1)
		}
	}
	wg.Add(2)
	if cfg.SendmailMap != "" {
		wg.Add(1)
		mm, _ := findMakemap()
		go check("sendmail", func() (int, error) {
			var stderr bytes.Buffer
			cmd := exec.Command(mm, "-u", "hash", cfg.SendmailMap)
			cmd.Stderr = &stderr // warnings such as "World writable directory"
			b, err := cmd.Output()
			if err != nil {
				return 0, fmt.Errorf("makemap -u: %v: %s", err, stderr.Bytes())
			}
			return bytes.Count(b, []byte("\n")), nil
		})
	} else {
		t.Log("makemap not installed: the sendmail map is not read here (it is in e2e TestSendmailRelay)")
	}
	go check("tcprules", func() (int, error) {
		db, err := cdb.Open(cfg.TCPRules)
		if err != nil {
			return 0, err
		}
		defer db.Close()
		n, it := 0, db.Iter()
		for it.Next() {
			n++
		}
		return n, it.Err()
	})
	go check("opensmtpd", func() (int, error) {
		b, err := os.ReadFile(cfg.OpenSMTPDTable)
		if err != nil {
			return 0, err
		}
		if !bytes.HasPrefix(b, []byte("# @list\n# written by relaygate")) || !bytes.HasSuffix(b, []byte("\n")) {
			return 0, fmt.Errorf("torn table %q", b[:min(len(b), 40)])
		}
		return bytes.Count(b, []byte("\n")) - 2, nil
	})
	for round := range 30 {
		set := sets[round%len(sets)]
		for _, o := range outs {
			if err := o.Write(context.Background(), set); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	if reads.Load() < 10 {
		t.Errorf("only %d reads during the rewrites", reads.Load())
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".relaygate-tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

// TestMissingOutputDirAtStart: an output directory that cannot be read at
// start (here: not there yet) no longer stops the start: the output fails
// and retries, and once the directory exists the file is written.
func TestMissingOutputDirAtStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "later")
	outs, err := Build(Config{OpenSMTPDTable: filepath.Join(dir, "relay"), OpenSMTPDUpdate: "true"})
	if err != nil {
		t.Fatalf("Build refused a missing directory: %v", err)
	}
	s := Start(outs, quick(t))
	defer s.Close(time.Second)
	s.Publish(addrs(t, "192.0.2.10"))
	testutil.Eventually(t, 2*time.Second, "failures retried", func() bool { return sample(s, "output_write_errors_total", "opensmtpd") >= 2 })
	os.Mkdir(dir, 0o755)
	testutil.Eventually(t, 2*time.Second, "the table once the directory exists", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "relay"))
		return strings.HasSuffix(string(b), "\n192.0.2.10\n")
	})
}
