package relp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/metric"
	"github.com/relaygate/relaygate/internal/testutil"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// librelpOffers is what librelp 1.11's client offers.
const librelpOffers = "relp_version=0\nrelp_software=http://librelp.adiscon.com,1.11.0,librelp\ncommands=syslog"

// testServer is a Server serving on loopback, its deliveries, and a way
// to stop it.
type testServer struct {
	*Server
	out    chan Delivery
	cancel context.CancelFunc
	done   chan struct{}
}

func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Allow == nil {
		cfg.Allow = loopback
	}
	srv, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: srv, out: make(chan Delivery, 4096), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(ts.done)
		if err := srv.Serve(ctx, ts.out); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop ends Serve through its context and waits for it.
func (ts *testServer) stop(t *testing.T) {
	t.Helper()
	ts.cancel()
	select {
	case <-ts.done:
	case <-time.After(testutil.EventuallyFloor):
		t.Fatal("Serve did not return within 20 s of its context ending")
	}
}

// next returns the next delivery.
func (ts *testServer) next(t *testing.T) Delivery {
	t.Helper()
	select {
	case d := <-ts.out:
		return d
	case <-time.After(testutil.EventuallyFloor):
		t.Fatal("no delivery within 20 s")
		return Delivery{}
	}
}

func (ts *testServer) noDelivery(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case d := <-ts.out:
		t.Fatalf("unexpected delivery %q", d.Raw)
	case <-time.After(within):
	}
}

// client is a RELP client written for the tests: it sends what it is told
// and reads answers with the package's frame reader.
type client struct {
	t    *testing.T
	conn net.Conn
	fr   *frameReader
	txnr uint32
}

func dial(t *testing.T, addr net.Addr) *client {
	t.Helper()
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return newClient(t, conn)
}

func newClient(t *testing.T, conn net.Conn) *client {
	return &client{t: t, conn: conn, fr: newFrameReader(conn, 1<<20)}
}

// send sends a command with the next TXNR and returns that TXNR.
func (c *client) send(cmd, data string) uint32 {
	c.t.Helper()
	c.txnr = nextTxnr(c.txnr)
	c.raw(string(appendFrame(nil, c.txnr, cmd, []byte(data))))
	return c.txnr
}

func (c *client) raw(s string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// open opens the session as librelp does and checks the answer.
func (c *client) open() {
	c.t.Helper()
	txnr := c.send(cmdOpen, librelpOffers)
	c.expectRsp(txnr, "200 OK\nrelp_version=0\nrelp_software=relaygate\ncommands=syslog")
}

func (c *client) read(within time.Duration) (frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(within))
	f, err := c.fr.next()
	if err == nil {
		f.raw = append([]byte(nil), f.raw...)
		f.data = append([]byte(nil), f.data...)
	}
	return f, err
}

func (c *client) expectRsp(txnr uint32, text string) {
	c.t.Helper()
	f, err := c.read(testutil.EventuallyFloor)
	if err != nil {
		c.t.Fatalf("waiting for the answer to %d: %v", txnr, err)
	}
	if string(f.raw) != "rsp" || f.txnr != txnr || string(f.data) != text {
		c.t.Fatalf("got %d %s %q, want %d rsp %q", f.txnr, f.raw, f.data, txnr, text)
	}
}

// expectNothing checks that nothing arrives for a while.
func (c *client) expectNothing(within time.Duration) {
	c.t.Helper()
	f, err := c.read(within)
	if err == nil {
		c.t.Fatalf("unexpected frame %d %s %q", f.txnr, f.raw, f.data)
	}
	if !isTimeout(err) {
		c.t.Fatalf("unexpected error %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// expectServerClose checks the serverclose hint, then the end of the
// connection.
func (c *client) expectServerClose() {
	c.t.Helper()
	f, err := c.read(testutil.EventuallyFloor)
	if err != nil {
		c.t.Fatalf("waiting for the serverclose hint: %v", err)
	}
	if f.txnr != 0 || string(f.raw) != "serverclose" || len(f.data) != 0 {
		c.t.Fatalf("got %d %s %q, want the serverclose hint", f.txnr, f.raw, f.data)
	}
	c.expectEOF()
}

// expectEOF checks that the server closed the connection (without
// anything more).
func (c *client) expectEOF() {
	c.t.Helper()
	f, err := c.read(testutil.EventuallyFloor)
	if err == nil {
		c.t.Fatalf("got %d %s %q, want the end of the connection", f.txnr, f.raw, f.data)
	}
	if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "connection reset") {
		c.t.Fatalf("got %v, want the end of the connection", err)
	}
}

func waitClosed(t *testing.T, st *Stats, reason string, n int64) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, fmt.Sprintf("%d sessions closed for %s (have %d)", n, reason, st.Closed(reason)),
		func() bool { return st.Closed(reason) >= n })
}

// TestOpenSyslogClose is a whole session as librelp has it: open, messages
// answered once acknowledged, close answered, the serverclose hint, the
// end.
func TestOpenSyslogClose(t *testing.T) {
	st := new(Stats)
	ts := startServer(t, Config{Stats: st})
	c := dial(t, ts.Addr())
	c.open()
	t2 := c.send(cmdSyslog, "<13>Nov 21 10:00:00 mail dovecot: one")
	d := ts.next(t)
	if string(d.Raw) != "<13>Nov 21 10:00:00 mail dovecot: one" || !d.Peer.Addr().IsLoopback() || d.TLSPeer != "" || d.Received.IsZero() {
		t.Fatalf("delivery %+v", d)
	}
	c.expectNothing(100 * time.Millisecond)
	d.Ack()
	c.expectRsp(t2, rspOK)
	d.Ack() // twice: nothing more
	t3 := c.send(cmdClose, "")
	c.expectRsp(t3, rspOK)
	c.expectServerClose()
	waitClosed(t, st, reasonClientClose, 1)
	if st.received.Load() != 1 || st.acked.Load() != 1 || st.unanswered.Load() != 0 {
		t.Errorf("received %d acked %d unanswered %d", st.received.Load(), st.acked.Load(), st.unanswered.Load())
	}
}

// TestAnswersInOrder: acknowledgements in any order; answers go out in
// TXNR order, each once everything before it is acknowledged.
func TestAnswersInOrder(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.Addr())
	c.open()
	var txnrs []uint32
	var ds []Delivery
	for i := range 5 {
		txnrs = append(txnrs, c.send(cmdSyslog, fmt.Sprintf("m%d", i)))
		ds = append(ds, ts.next(t))
	}
	ds[2].Ack()
	c.expectNothing(100 * time.Millisecond)
	ds[0].Ack()
	c.expectRsp(txnrs[0], rspOK)
	c.expectNothing(100 * time.Millisecond)
	ds[1].Ack()
	c.expectRsp(txnrs[1], rspOK)
	c.expectRsp(txnrs[2], rspOK)
	ds[4].Ack()
	c.expectNothing(100 * time.Millisecond)
	ds[3].Ack()
	c.expectRsp(txnrs[3], rspOK)
	c.expectRsp(txnrs[4], rspOK)
}

// TestLateGroupedAcks: a consumer that acknowledges on a timer, in groups,
// shuffled within each group (as the daemon acks what a state sync
// covered); every message is answered once, in order.
func TestLateGroupedAcks(t *testing.T) {
	const n = 3000
	ts := startServer(t, Config{Window: 128})
	c := dial(t, ts.Addr())
	c.open()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var held []Delivery
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		rng := rand.New(rand.NewSource(1))
		for {
			select {
			case d := <-ts.out:
				held = append(held, d)
			case <-tick.C:
				rng.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
				for _, d := range held {
					d.Ack()
				}
				held = held[:0]
			case <-stop:
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	sent := make(chan uint32, n)
	go func() {
		// The sender writes without reading, as omrelp does between
		// answers; the window holds it back.
		w := bufio.NewWriter(c.conn)
		txnr := c.txnr
		for i := range n {
			txnr = nextTxnr(txnr)
			w.Write(appendFrame(nil, txnr, cmdSyslog, []byte(fmt.Sprintf("message %d", i))))
			sent <- txnr
		}
		w.Flush()
	}()
	for i := range n {
		want := <-sent
		f, err := c.read(testutil.EventuallyFloor)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if string(f.raw) != "rsp" || f.txnr != want || string(f.data) != rspOK {
			t.Fatalf("answer %d: %d %s %q, want %d rsp 200 OK", i, f.txnr, f.raw, f.data, want)
		}
	}
}

// TestWindowBackPressure: with Window frames unanswered the session stops
// reading; answering frees it.
func TestWindowBackPressure(t *testing.T) {
	st := new(Stats)
	ts := startServer(t, Config{Window: 4, Stats: st})
	c := dial(t, ts.Addr())
	c.open()
	var txnrs []uint32
	for i := range 10 {
		txnrs = append(txnrs, c.send(cmdSyslog, fmt.Sprintf("m%d", i)))
	}
	var ds []Delivery
	for range 4 {
		ds = append(ds, ts.next(t))
	}
	ts.noDelivery(t, 200*time.Millisecond)
	testutil.Eventually(t, 5*time.Second, "window_full counted", func() bool { return st.windowFull.Load() > 0 })
	if got := st.unanswered.Load(); got != 4 {
		t.Errorf("unanswered %d, want 4", got)
	}
	for _, d := range ds {
		d.Ack()
	}
	for i := range 4 {
		c.expectRsp(txnrs[i], rspOK)
	}
	for i := 4; i < 10; i++ {
		ts.next(t).Ack()
		c.expectRsp(txnrs[i], rspOK)
	}
}

// TestCloseWaitsForAcks: close is answered after the frames before it.
func TestCloseWaitsForAcks(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.Addr())
	c.open()
	t2 := c.send(cmdSyslog, "a")
	t3 := c.send(cmdSyslog, "b")
	t4 := c.send(cmdClose, "")
	d2, d3 := ts.next(t), ts.next(t)
	c.expectNothing(100 * time.Millisecond)
	go func() { time.Sleep(50 * time.Millisecond); d3.Ack(); d2.Ack() }()
	c.expectRsp(t2, rspOK)
	c.expectRsp(t3, rspOK)
	c.expectRsp(t4, rspOK)
	c.expectServerClose()
}

// TestCloseDrainTimeout: what is never acknowledged is never answered;
// after DrainTimeout the session closes without it.
func TestCloseDrainTimeout(t *testing.T) {
	st := new(Stats)
	ts := startServer(t, Config{DrainTimeout: 200 * time.Millisecond, Stats: st})
	c := dial(t, ts.Addr())
	c.open()
	t2 := c.send(cmdSyslog, "a")
	c.send(cmdSyslog, "b")
	// The drain's timer starts when the server reads close, never before
	// it is sent: a late-scheduled test goroutine cannot shorten el.
	start := time.Now()
	c.send(cmdClose, "")
	ts.next(t).Ack()
	d := ts.next(t) // never acknowledged in time
	c.expectRsp(t2, rspOK)
	c.expectServerClose()
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Errorf("closed after %s, before DrainTimeout", el)
	}
	d.Ack() // after the end: nothing
	waitClosed(t, st, reasonClientClose, 1)
	testutil.Eventually(t, time.Second, "unanswered back to 0", func() bool { return st.unanswered.Load() == 0 })
}

// TestMalformedFrameClosesSession: each class of bad frame ends the
// session with its reason; what was acknowledged before it is still
// answered, and the client gets the serverclose hint.
func TestMalformedFrameClosesSession(t *testing.T) {
	cases := []struct {
		reason string
		frame  func(next uint32) string
	}{
		{reasonBadTxnr, func(uint32) string { return "x syslog 1 a\n" }},
		{reasonBadCommand, func(n uint32) string { return fmt.Sprintf("%d sys-log 1 a\n", n) }},
		{reasonBadDatalen, func(n uint32) string { return fmt.Sprintf("%d syslog -1 a\n", n) }},
		{reasonBadTrailer, func(n uint32) string { return fmt.Sprintf("%d syslog 1 ab\n", n) }},
		{reasonTooLong, func(n uint32) string { return fmt.Sprintf("%d open 99999 ", n) }},
		{reasonTxnrSequence, func(n uint32) string { return fmt.Sprintf("%d syslog 1 a\n", n+1) }},
		{reasonUnknownCommand, func(n uint32) string { return fmt.Sprintf("%d starttls 0\n", n) }},
		{reasonUnknownCommand, func(n uint32) string { return fmt.Sprintf("%d rsp 6 200 OK\n", n) }},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			st := new(Stats)
			ts := startServer(t, Config{Stats: st})
			c := dial(t, ts.Addr())
			c.open()
			t2 := c.send(cmdSyslog, "good")
			d := ts.next(t)
			c.raw(tc.frame(nextTxnr(c.txnr)))
			time.Sleep(20 * time.Millisecond)
			d.Ack()
			c.expectRsp(t2, rspOK)
			c.expectServerClose()
			waitClosed(t, st, tc.reason, 1)
			ts.noDelivery(t, 10*time.Millisecond)
		})
	}
}

// TestTruncatedFrame: a client gone inside a frame; the session ends at
// once (nothing can be answered).
func TestTruncatedFrame(t *testing.T) {
	st := new(Stats)
	ts := startServer(t, Config{Stats: st})
	c := dial(t, ts.Addr())
	c.open()
	c.raw("2 syslog 10 abc")
	c.conn.(*net.TCPConn).CloseWrite()
	waitClosed(t, st, reasonTruncated, 1)
}

// TestProtocolErrors: the errors librelp's server answers with 500 before
// it closes.
func TestProtocolErrors(t *testing.T) {
	cases := []struct {
		name, reason string
		run          func(c *client)
	}{
		{"syslog before open", reasonNotOpen, func(c *client) {
			txnr := c.send(cmdSyslog, "a")
			c.expectRsp(txnr, "500 command disabled")
		}},
		{"second open", reasonAlreadyOpen, func(c *client) {
			c.open()
			txnr := c.send(cmdOpen, librelpOffers)
			c.expectRsp(txnr, "500 protocol error: connection already open")
		}},
		{"no relp_version", reasonBadOffer, func(c *client) {
			txnr := c.send(cmdOpen, "commands=syslog")
			c.expectRsp(txnr, "500 no relp_version offer")
		}},
		{"no syslog command", reasonBadOffer, func(c *client) {
			txnr := c.send(cmdOpen, "relp_version=0\ncommands=eventlog")
			c.expectRsp(txnr, "500 required command not supported by client")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := new(Stats)
			ts := startServer(t, Config{Stats: st})
			c := dial(t, ts.Addr())
			tc.run(c)
			c.expectServerClose()
			waitClosed(t, st, tc.reason, 1)
		})
	}
}

// TestHintIgnored: a client's TXNR 0 frame needs no answer and does not
// move the sequence.
func TestHintIgnored(t *testing.T) {
	st := new(Stats)
	ts := startServer(t, Config{Stats: st})
	c := dial(t, ts.Addr())
	c.open()
	c.raw("0 abort 0\n")
	txnr := c.send(cmdSyslog, "a")
	ts.next(t).Ack()
	c.expectRsp(txnr, rspOK)
	if st.hints.Load() != 1 {
		t.Errorf("hints %d, want 1", st.hints.Load())
	}
}

// TestTooLongSyslogSkipped: a syslog frame over the limit is answered
// without being handed on, and the session goes on.
func TestTooLongSyslogSkipped(t *testing.T) {
	st := new(Stats)
	ts := startServer(t, Config{MaxMessage: 5000, Stats: st})
	c := dial(t, ts.Addr())
	c.open()
	t2 := c.send(cmdSyslog, strings.Repeat("x", 5001))
	t3 := c.send(cmdSyslog, "next")
	d := ts.next(t)
	if string(d.Raw) != "next" {
		t.Fatalf("delivery %q, want the message after the long one", d.Raw)
	}
	c.expectRsp(t2, rspOK) // answered at once: nothing before it waits
	c.expectNothing(50 * time.Millisecond)
	d.Ack()
	c.expectRsp(t3, rspOK)
	if st.tooLong.Load() != 1 {
		t.Errorf("too_long %d, want 1", st.tooLong.Load())
	}
}

// TestEmptySyslogDelivered: DATALEN 0 is a message too (empty), handed on
// for the consumer to drop and acknowledge.
func TestEmptySyslogDelivered(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.Addr())
	c.open()
	txnr := c.send(cmdSyslog, "")
	d := ts.next(t)
	if d.Raw == nil || len(d.Raw) != 0 {
		t.Fatalf("Raw %q", d.Raw)
	}
	d.Ack()
	c.expectRsp(txnr, rspOK)
}

func TestTimeouts(t *testing.T) {
	t.Run("open", func(t *testing.T) {
		st := new(Stats)
		ts := startServer(t, Config{OpenTimeout: 100 * time.Millisecond, Stats: st})
		c := dial(t, ts.Addr())
		c.expectServerClose()
		waitClosed(t, st, reasonOpenTimeout, 1)
	})
	t.Run("frame", func(t *testing.T) {
		st := new(Stats)
		ts := startServer(t, Config{FrameTimeout: 100 * time.Millisecond, Stats: st})
		c := dial(t, ts.Addr())
		c.open()
		c.raw("2 syslog 10 abc")
		c.expectServerClose()
		waitClosed(t, st, reasonFrameTimeout, 1)
	})
	t.Run("idle", func(t *testing.T) {
		st := new(Stats)
		ts := startServer(t, Config{IdleTimeout: 100 * time.Millisecond, Stats: st})
		c := dial(t, ts.Addr())
		c.open()
		c.expectServerClose()
		waitClosed(t, st, reasonIdle, 1)
	})
	t.Run("no idle timeout by default", func(t *testing.T) {
		ts := startServer(t, Config{})
		c := dial(t, ts.Addr())
		c.open()
		c.expectNothing(300 * time.Millisecond)
		txnr := c.send(cmdSyslog, "late")
		ts.next(t).Ack()
		c.expectRsp(txnr, rspOK)
	})
}

// TestShutdownDrains: when Serve's context ends, sessions stop reading,
// answer what is acknowledged meanwhile, send the hint and close; Serve
// returns.
func TestShutdownDrains(t *testing.T) {
	st := new(Stats)
	ts := startServer(t, Config{Stats: st})
	c := dial(t, ts.Addr())
	c.open()
	t2 := c.send(cmdSyslog, "a")
	d := ts.next(t)
	ts.cancel()
	go func() { time.Sleep(50 * time.Millisecond); d.Ack() }()
	c.expectRsp(t2, rspOK)
	c.expectServerClose()
	ts.stop(t)
	if st.Closed(reasonShutdown) != 1 {
		t.Errorf("shutdown closes %d", st.Closed(reasonShutdown))
	}
	if _, err := net.Dial("tcp", ts.Addr().String()); err == nil {
		t.Error("still accepting after shutdown")
	}
}

// TestShutdownWhileBlocked: a session blocked handing a frame on (the
// consumer not reading) still ends on shutdown; the frame is never
// answered.
func TestShutdownWhileBlocked(t *testing.T) {
	srv, err := Listen(Config{Addr: "127.0.0.1:0", Allow: loopback, DrainTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan Delivery) // nobody reads
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, out) }()
	c := dial(t, srv.Addr())
	c.open()
	c.send(cmdSyslog, "a")
	time.Sleep(50 * time.Millisecond)
	cancel()
	c.expectServerClose()
	select {
	case <-done:
	case <-time.After(testutil.EventuallyFloor):
		t.Fatal("Serve did not return")
	}
	if got := srv.stats.unanswered.Load(); got != 0 {
		t.Errorf("unanswered %d after the end", got)
	}
}

// TestCloseAborts: Close ends sessions at once, answering nothing that was
// not answered (the kill of the e2e test); later acks do nothing.
func TestCloseAborts(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.Addr())
	c.open()
	c.send(cmdSyslog, "a")
	d := ts.next(t)
	ts.Close()
	c.expectEOF()
	d.Ack()
	select {
	case <-ts.done:
	case <-time.After(testutil.EventuallyFloor):
		t.Fatal("Serve did not return after Close")
	}
}

// TestAllowAndConnectionLimits: -allow is checked at accept, then
// -max-conns-per-host and -max-conns, as on the syslog listeners.
func TestAllowAndConnectionLimits(t *testing.T) {
	t.Run("not allowed", func(t *testing.T) {
		st := new(Stats)
		ts := startServer(t, Config{Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, Stats: st})
		c := dial(t, ts.Addr())
		c.expectEOF()
		if st.refused[0].Load() != 1 {
			t.Errorf("refused not_allowed %d", st.refused[0].Load())
		}
	})
	t.Run("per host", func(t *testing.T) {
		st := new(Stats)
		ts := startServer(t, Config{MaxConns: 4, MaxConnsPerHost: 1, Stats: st})
		c1 := dial(t, ts.Addr())
		c1.open()
		c2 := dial(t, ts.Addr())
		c2.expectEOF()
		if st.refused[2].Load() != 1 {
			t.Errorf("refused per_host %d", st.refused[2].Load())
		}
		// Another loopback address is another host.
		conn, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).Dial("tcp", ts.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		newClient(t, conn).open()
	})
	t.Run("max conns", func(t *testing.T) {
		st := new(Stats)
		ts := startServer(t, Config{MaxConns: 1, MaxConnsPerHost: 1, Stats: st})
		dial(t, ts.Addr()).open()
		conn, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}).Dial("tcp", ts.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		newClient(t, conn).expectEOF()
		if st.refused[1].Load() != 1 {
			t.Errorf("refused max_conns %d", st.refused[1].Load())
		}
	})
	t.Run("bad limits", func(t *testing.T) {
		if _, err := Listen(Config{Addr: "127.0.0.1:0", MaxConns: 2, MaxConnsPerHost: 3}); err == nil {
			t.Error("per-host limit over the total accepted")
		}
		if _, err := Listen(Config{}); err == nil {
			t.Error("no address accepted")
		}
		if _, err := Listen(Config{Addr: "127.0.0.1:0", Software: "a\nb"}); err == nil {
			t.Error("software offer with LF accepted")
		}
	})
}

// TestSamples: every series is described once per label value, with one
// help text per name.
func TestSamples(t *testing.T) {
	st := new(Stats)
	st.countClosed(reasonBadTxnr)
	st.countRefused(refusedTLS)
	seen := map[string]bool{}
	help := map[string]string{}
	st.Samples(func(s metric.Sample) {
		key := s.Name + "/" + s.LabelValue
		if seen[key] {
			t.Errorf("%s described twice", key)
		}
		seen[key] = true
		if h, ok := help[s.Name]; ok && h != s.Help {
			t.Errorf("%s: two help texts", s.Name)
		}
		help[s.Name] = s.Help
		if !strings.HasPrefix(s.Name, metric.Prefix+"relp_") {
			t.Errorf("%s: not a relaygate_relp_ series", s.Name)
		}
		if s.LabelValue != "" && !strings.Contains(s.Help, s.LabelValue) {
			t.Errorf("%s: help does not name %q", s.Name, s.LabelValue)
		}
		if key == metric.Prefix+"relp_sessions_closed_total/bad_txnr" && s.Value != 1 {
			t.Errorf("%s = %v", key, s.Value)
		}
	})
	for _, r := range closeReasons {
		if !seen[metric.Prefix+"relp_sessions_closed_total/"+r] {
			t.Errorf("reason %s not described", r)
		}
	}
}

// TestManySessionsRace: concurrent sessions, a consumer acking from
// several goroutines; for the race detector.
func TestManySessionsRace(t *testing.T) {
	ts := startServer(t, Config{Window: 8})
	var acks sync.WaitGroup
	for range 3 {
		acks.Add(1)
		go func() {
			defer acks.Done()
			for {
				select {
				case d := <-ts.out:
					d.Ack()
					d.Ack()
				case <-ts.done:
					return
				}
			}
		}()
	}
	t.Run("sessions", func(t *testing.T) {
		for s := range 4 {
			t.Run(fmt.Sprint(s), func(t *testing.T) {
				t.Parallel()
				conn, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(s+1))}}).Dial("tcp", ts.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				c := newClient(t, conn)
				c.open()
				for i := range 200 {
					txnr := c.send(cmdSyslog, fmt.Sprintf("s%d m%d", s, i))
					c.expectRsp(txnr, rspOK)
				}
				c.expectRsp(c.send(cmdClose, ""), rspOK)
				c.expectServerClose()
			})
		}
	})
	ts.stop(t)
	acks.Wait()
}

// TestListenControl: Config.Control runs on the listening socket before
// bind (the daemon sets SO_REUSEPORT there for -takeover).
func TestListenControl(t *testing.T) {
	var got string
	ts := startServer(t, Config{Control: func(network, address string, c syscall.RawConn) error {
		got = network + " " + address
		return c.Control(func(uintptr) {})
	}})
	if got != "tcp4 127.0.0.1:0" {
		t.Fatalf("Control called with %q", got)
	}
	dial(t, ts.Addr()).open()
	if _, err := Listen(Config{Addr: "127.0.0.1:0", Control: func(string, string, syscall.RawConn) error {
		return errors.New("refused by Control")
	}}); err == nil || !strings.Contains(err.Error(), "refused by Control") {
		t.Fatalf("Listen with a failing Control: %v", err)
	}
}
