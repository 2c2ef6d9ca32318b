package relp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/receiver/syslogmsg"
	"github.com/rs/zerolog"
)

// The tests in this file run the real rsyslog (Debian's rsyslogd with
// omrelp from rsyslog-relp, librelp 1.11) forwarding to this package's
// server: rsyslogd started by the test with its own configuration, pid
// file, work directory and input socket (no /dev/log, no root needed),
// fed by logger. Without rsyslogd, logger or omrelp they skip, and fail
// under CI.

// idRE finds a test message's number in what rsyslog forwards.
var idRE = regexp.MustCompile(`relptest-id=(\d+)`)

// rsyslog is a running rsyslogd.
type rsyslog struct {
	dir    string
	sock   string
	cmd    *exec.Cmd
	stderr *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// forward is the rule sending every message of the program relptest to
// the omrelp action with params.
func forward(params string) string {
	return "if $programname == 'relptest' then {\n  action(type=\"omrelp\" " + params + ")\n}\n"
}

// startRsyslog runs rsyslogd with rules after its input and omrelp's
// module(), which has module as parameters.
func startRsyslog(t *testing.T, module, rules string) *rsyslog {
	t.Helper()
	rsyslogd := testutil.RequireProgram(t, "rsyslogd", "apt-get install rsyslog rsyslog-relp")
	testutil.RequireProgram(t, "logger", "apt-get install bsdutils")
	dir := t.TempDir()
	r := &rsyslog{dir: dir, sock: filepath.Join(dir, "log.sock"), stderr: new(syncBuffer)}
	if err := os.Mkdir(filepath.Join(dir, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "rsyslog.conf")
	testutil.WriteFile(t, conf, fmt.Sprintf(`global(workDirectory=%q)
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket=%q RateLimit.Interval="0")
module(load="omrelp" %s)
%s`, filepath.Join(dir, "work"), r.sock, module, rules), 0o644)
	if out, err := exec.Command(rsyslogd, "-N1", "-f", conf).CombinedOutput(); err != nil {
		if bytes.Contains(out, []byte("omrelp")) {
			if testutil.InCI() {
				t.Fatalf("rsyslogd cannot load omrelp (apt-get install rsyslog-relp): %s", out)
			}
			t.Skipf("rsyslogd cannot load omrelp (apt-get install rsyslog-relp): %s", out)
		}
		t.Fatalf("rsyslogd -N1: %v\n%s", err, out)
	}
	r.cmd = exec.Command(rsyslogd, "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	r.cmd.Stdout, r.cmd.Stderr = r.stderr, r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = r.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = r.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("rsyslogd output:\n%s", r.stderr.String())
		}
	})
	testutil.Eventually(t, 10*time.Second, "rsyslogd's input socket", func() bool {
		_, err := os.Stat(r.sock)
		return err == nil
	})
	return r
}

// send logs messages first..last-1 through rsyslog's socket, with one
// logger process reading them from its standard input.
func (r *rsyslog) send(t *testing.T, first, last int) {
	t.Helper()
	if err := r.log(first, last); err != nil {
		t.Fatal(err)
	}
}

func (r *rsyslog) log(first, last int) error {
	var in strings.Builder
	for i := first; i < last; i++ {
		fmt.Fprintf(&in, "pop3-login: Login: user=<u%d>, method=PLAIN, rip=192.0.2.%d, lip=192.0.2.1 relptest-id=%d\n", i, i%250+1, i)
	}
	cmd := exec.Command("logger", "-u", r.sock, "-t", "relptest", "-p", "mail.info")
	cmd.Stdin = strings.NewReader(in.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("logger: %v\n%s", err, out)
	}
	return nil
}

// recorder is a consumer that acknowledges on a timer, as the daemon
// acknowledges what each state sync covered, until it is frozen; then it
// keeps what it receives unacknowledged.
type recorder struct {
	t        *testing.T
	mu       sync.Mutex
	received map[int]int // id → deliveries
	acked    map[int]bool
	held     []Delivery
	frozen   bool
	freezeAt int // if positive, frozen is set once this many distinct ids arrived
	tlsPeers map[string]bool
	marks    int // rsyslog's "-- MARK --" heartbeats
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, received: map[int]int{}, acked: map[int]bool{}, tlsPeers: map[string]bool{}}
}

// run consumes out until ctx is done, acknowledging every period.
func (rec *recorder) run(ctx context.Context, out <-chan Delivery, period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case d := <-out:
			env, err := syslogmsg.ParseEnvelope(d.Raw)
			if err == nil && env.Program == "rsyslogd" && env.Text == "-- MARK --" {
				rec.mu.Lock()
				rec.marks++
				rec.mu.Unlock()
				d.Ack() // what the daemon does with a program it does not parse
				continue
			}
			m := idRE.FindSubmatch(d.Raw)
			if err != nil || env.Program != "relptest" || m == nil {
				rec.t.Errorf("delivery %q: envelope %+v, %v", d.Raw, env, err)
				d.Ack() // what the daemon does with what it cannot use
				continue
			}
			id, _ := strconv.Atoi(string(m[1]))
			rec.mu.Lock()
			rec.received[id]++
			rec.tlsPeers[d.TLSPeer] = true
			rec.held = append(rec.held, d)
			if rec.freezeAt > 0 && len(rec.received) >= rec.freezeAt {
				rec.frozen = true
			}
			rec.mu.Unlock()
		case <-tick.C:
			rec.mu.Lock()
			if !rec.frozen {
				for _, d := range rec.held {
					m := idRE.FindSubmatch(d.Raw)
					id, _ := strconv.Atoi(string(m[1]))
					rec.acked[id] = true
					d.Ack()
				}
				rec.held = rec.held[:0]
			}
			rec.mu.Unlock()
		case <-ctx.Done():
			return
		}
	}
}

func (rec *recorder) count() (distinct, total int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, n := range rec.received {
		total += n
	}
	return len(rec.received), total
}

// unacked returns the ids received and never acknowledged.
func (rec *recorder) unacked() map[int]bool {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	u := map[int]bool{}
	for id := range rec.received {
		if !rec.acked[id] {
			u[id] = true
		}
	}
	return u
}

// relpServer runs a Server on addr with a recorder.
type relpServer struct {
	srv    *Server
	rec    *recorder
	cancel context.CancelFunc
	done   chan struct{}
}

func serveRecorded(t *testing.T, cfg Config, period time.Duration) *relpServer {
	t.Helper()
	cfg.Allow = loopback
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	var srv *Server
	var err error
	// The address of a server just closed may take a moment to be free.
	for range 50 {
		if srv, err = Listen(cfg); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs := &relpServer{srv: srv, rec: newRecorder(t), cancel: cancel, done: make(chan struct{})}
	out := make(chan Delivery, 1024)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); rs.rec.run(ctx, out, period) }()
	go func() { defer wg.Done(); _ = srv.Serve(ctx, out) }()
	go func() { wg.Wait(); close(rs.done) }()
	t.Cleanup(rs.stop)
	return rs
}

func (rs *relpServer) stop() {
	rs.srv.Close()
	rs.cancel()
	<-rs.done
}

// TestRealRsyslogResendsUnacked: rsyslog forwards over RELP with a
// disk-assisted queue; the server stops acknowledging mid-stream, is
// killed with frames unanswered (Close: no drain, no hint), and started
// again on the same port. Every message arrives, and every one the first
// server received without acknowledging arrives again at the second.
func TestRealRsyslogResendsUnacked(t *testing.T) {
	const n, freezeAt = 2000, 600
	st := new(Stats)
	first := serveRecorded(t, Config{Addr: "127.0.0.1:0", Stats: st}, 20*time.Millisecond)
	// The recorder stops acknowledging by itself once freezeAt messages
	// arrived: a test goroutine polling for that could see it late, with
	// everything acknowledged.
	first.rec.mu.Lock()
	first.rec.freezeAt = freezeAt
	first.rec.mu.Unlock()
	addr := first.srv.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	rs := startRsyslog(t, "", forward(`target="127.0.0.1" port="`+port+`"
    queue.type="LinkedList" queue.filename="relp-q" queue.saveOnShutdown="on"
    action.resumeRetryCount="-1" action.resumeInterval="1"`))
	sent := make(chan error, 1)
	go func() { sent <- rs.log(0, n/2) }()

	// Stop acknowledging once freezeAt messages arrived; kill the server
	// once it holds some unacknowledged ones.
	testutil.Eventually(t, 30*time.Second, "the first server receives messages", func() bool {
		d, _ := first.rec.count()
		return d >= freezeAt
	})
	testutil.Eventually(t, 30*time.Second, "messages unacknowledged at the first server", func() bool {
		return len(first.rec.unacked()) >= 50
	})
	first.stop()
	unacked := first.rec.unacked()
	d1, _ := first.rec.count()
	t.Logf("first server: %d messages, %d of them unacknowledged when killed", d1, len(unacked))
	if err := <-sent; err != nil {
		t.Fatal(err)
	}

	time.Sleep(500 * time.Millisecond) // rsyslog finds nobody there meanwhile
	second := serveRecorded(t, Config{Addr: addr, Stats: st}, 20*time.Millisecond)
	rs.send(t, n/2, n)

	testutil.Eventually(t, 60*time.Second, "every message at one server or the other", func() bool {
		for id := range n {
			first.rec.mu.Lock()
			a := first.rec.acked[id]
			first.rec.mu.Unlock()
			second.rec.mu.Lock()
			b := second.rec.received[id] > 0
			second.rec.mu.Unlock()
			if !a && !b {
				return false
			}
		}
		return true
	})
	second.rec.mu.Lock()
	var missing []int
	for id := range unacked {
		if second.rec.received[id] == 0 {
			missing = append(missing, id)
		}
	}
	second.rec.mu.Unlock()
	if len(missing) > 0 {
		t.Fatalf("%d messages unacknowledged by the first server never came again: %v", len(missing), missing)
	}
	d2, total2 := second.rec.count()
	t.Logf("second server: %d distinct messages, %d deliveries; sessions closed: shutdown %d, eof %d",
		d2, total2, st.Closed(reasonShutdown), st.Closed(reasonEOF))
	for _, r := range closeReasons {
		switch r {
		case reasonShutdown, reasonEOF, reasonClientClose:
		default:
			if c := st.Closed(r); c > 0 {
				t.Errorf("%d sessions closed for %s", c, r)
			}
		}
	}
}

// TestRealRsyslogRebindCloses: omrelp's rebindInterval makes librelp close
// its session every 100 messages (close, then a new open); every close is
// answered after the frames before it, so nothing is lost, though librelp
// drops its unanswered frames when it closes.
func TestRealRsyslogRebindCloses(t *testing.T) {
	const n = 1000
	st := new(Stats)
	srv := serveRecorded(t, Config{Addr: "127.0.0.1:0", Stats: st}, 10*time.Millisecond)
	_, port, _ := net.SplitHostPort(srv.srv.Addr().String())
	rs := startRsyslog(t, "", forward(`target="127.0.0.1" port="`+port+`" rebindInterval="100"
    action.resumeRetryCount="-1" action.resumeInterval="1"`))
	rs.send(t, 0, n)
	testutil.Eventually(t, 60*time.Second, "every message", func() bool {
		d, _ := srv.rec.count()
		return d == n
	})
	_, total := srv.rec.count()
	closes := st.Closed(reasonClientClose)
	t.Logf("%d messages in %d deliveries; %d sessions closed by the client", n, total, closes)
	if total != n {
		// Every close was answered after the frames before it: nothing
		// was left to send again.
		t.Errorf("%d deliveries of %d messages: some came twice", total, n)
	}
	if closes < n/100-1 {
		t.Errorf("%d client closes, want about %d (rebindInterval 100)", closes, n/100)
	}
	for _, r := range closeReasons {
		if r != reasonClientClose && r != reasonEOF && st.Closed(r) > 0 {
			t.Errorf("%d sessions closed for %s", st.Closed(r), r)
		}
	}
}

// TestRealRsyslogTLS: omrelp over TLS (librelp's own TLS, from the first
// byte) with a client certificate, to a server that requires one, with
// each of librelp's TLS libraries. librelp's GnuTLS sends no RSA client
// certificate over TLS 1.3 (seen with librelp 1.11, GnuTLS 3.7.9: the
// handshake fails with "client didn't provide a certificate"); limited to
// TLS 1.2 it does, and OpenSSL and ECDSA keys work over TLS 1.3.
func TestRealRsyslogTLS(t *testing.T) {
	cases := []struct {
		name   string
		kind   testutil.KeyKind
		module string // omrelp's module() parameters
		action string // more action() parameters
	}{
		{"ecdsa-gnutls", testutil.ECDSA, "", ""},
		{"ecdsa-openssl", testutil.ECDSA, `tls.tlslib="openssl"`, ""},
		{"rsa-openssl", testutil.RSA, `tls.tlslib="openssl"`, ""},
		{"rsa-gnutls-tls12", testutil.RSA, "", `tls.prioritystring="NORMAL:-VERS-TLS1.3"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pki := testutil.NewPKI(t, "", testutil.PKIOptions{Kind: tc.kind})
			st := new(Stats)
			srv := serveRecorded(t, Config{Addr: "127.0.0.1:0", TLS: serverTLS(t, pki, true), Stats: st}, 10*time.Millisecond)
			_, port, _ := net.SplitHostPort(srv.srv.Addr().String())
			rs := startRsyslog(t, tc.module, forward(fmt.Sprintf(`target="127.0.0.1" port=%q
    tls="on" tls.caCert=%q tls.myCert=%q tls.myPrivKey=%q
    tls.authMode="name" tls.permittedPeer=["localhost"] %s
    action.resumeRetryCount="-1" action.resumeInterval="1"`, port, pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile, tc.action)))
			rs.send(t, 0, 100)
			testutil.Eventually(t, 30*time.Second, "every message over TLS", func() bool {
				d, _ := srv.rec.count()
				return d == 100
			})
			srv.rec.mu.Lock()
			defer srv.rec.mu.Unlock()
			if !srv.rec.tlsPeers["mx1.example"] || len(srv.rec.tlsPeers) != 1 {
				t.Errorf("TLS peers %v, want mx1.example", srv.rec.tlsPeers)
			}
		})
	}
}

// TestRealRsyslogQuietSender: librelp notices a broken session only when
// it next sends, so frames left unanswered by a server that went away are
// sent again with the next message forwarded on that action. A sender
// with nothing more to forward keeps them until then, unless rsyslog's
// immark heartbeat goes through the same action (docs/RELP.md).
func TestRealRsyslogQuietSender(t *testing.T) {
	const queue = `
    queue.type="LinkedList" queue.filename="relp-q" queue.saveOnShutdown="on"
    action.resumeRetryCount="-1" action.resumeInterval="1"`
	// kill runs 50 messages into a server that never answers them, kills
	// it, and starts another on the same address.
	kill := func(t *testing.T, rs func(port string) *rsyslog) (*rsyslog, *relpServer) {
		first := serveRecorded(t, Config{Addr: "127.0.0.1:0"}, 10*time.Millisecond)
		first.rec.mu.Lock()
		first.rec.frozen = true
		first.rec.mu.Unlock()
		addr := first.srv.Addr().String()
		_, port, _ := net.SplitHostPort(addr)
		r := rs(port)
		r.send(t, 0, 50)
		testutil.Eventually(t, 10*time.Second, "50 messages at the first server", func() bool {
			d, _ := first.rec.count()
			return d == 50
		})
		first.stop()
		return r, serveRecorded(t, Config{Addr: addr}, 10*time.Millisecond)
	}
	t.Run("resent with the next message", func(t *testing.T) {
		rs, second := kill(t, func(port string) *rsyslog {
			return startRsyslog(t, "", forward(`target="127.0.0.1" port="`+port+`"`+queue))
		})
		time.Sleep(2 * time.Second)
		before, _ := second.rec.count()
		rs.send(t, 50, 51)
		testutil.Eventually(t, 30*time.Second, "all 51 messages at the second server", func() bool {
			d, _ := second.rec.count()
			return d == 51
		})
		t.Logf("at the second server: %d of the 50 unanswered messages before the next message, all after it", before)
	})
	t.Run("resent with a heartbeat", func(t *testing.T) {
		_, second := kill(t, func(port string) *rsyslog {
			// The heartbeat: immark's "-- MARK --" (an internal message, so
			// rsyslog must process those itself), through the same action,
			// only when the action was idle.
			return startRsyslog(t, "", `global(processInternalMessages="on")
module(load="immark" interval="1")
if $programname == 'relptest' or $msg == '-- MARK --' then {
  action(type="omrelp" target="127.0.0.1" port="`+port+`" action.writeAllMarkMessages="off"`+queue+`)
}
`)
		})
		testutil.Eventually(t, 30*time.Second, "the 50 unanswered messages at the second server, with no new message", func() bool {
			d, _ := second.rec.count()
			return d == 50
		})
	})
}

// TestRealRsyslogBackPressure: relaygate's window smaller than omrelp's
// (8 against 128): the session stops reading while 8 frames wait, TCP
// holds rsyslog back, and everything still arrives once, in order of
// answers.
func TestRealRsyslogBackPressure(t *testing.T) {
	const n = 400
	st := new(Stats)
	srv := serveRecorded(t, Config{Addr: "127.0.0.1:0", Window: 8, Stats: st}, 10*time.Millisecond)
	// Nothing is answered until the window has filled, however slowly
	// rsyslog sends on a loaded machine; then everything is.
	srv.rec.mu.Lock()
	srv.rec.frozen = true
	srv.rec.mu.Unlock()
	_, port, _ := net.SplitHostPort(srv.srv.Addr().String())
	rs := startRsyslog(t, "", forward(`target="127.0.0.1" port="`+port+`"
    action.resumeRetryCount="-1" action.resumeInterval="1"`))
	rs.send(t, 0, n)
	testutil.Eventually(t, 30*time.Second, "the window full", func() bool { return st.windowFull.Load() > 0 })
	srv.rec.mu.Lock()
	srv.rec.frozen = false
	srv.rec.mu.Unlock()
	testutil.Eventually(t, 60*time.Second, "every message", func() bool {
		d, _ := srv.rec.count()
		return d == n
	})
	_, total := srv.rec.count()
	if total != n {
		t.Errorf("%d deliveries of %d messages", total, n)
	}
	if st.windowFull.Load() == 0 {
		t.Error("the window never filled")
	}
	t.Logf("window full %d times", st.windowFull.Load())
}
