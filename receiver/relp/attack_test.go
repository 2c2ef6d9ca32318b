package relp

import (
	"context"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

// Tests of what a hostile sender inside -allow can try against a session.

// TestOneFrameOneMessage: DATA is one message whatever it holds (LF, NUL,
// something that looks like a second frame or a second syslog line); a
// DATALEN shorter than what follows ends the session at the trailer
// without handing anything on, and a longer one takes the octets of what
// looks like the next frame into this message rather than reading a
// second one.
func TestOneFrameOneMessage(t *testing.T) {
	t.Run("embedded LF and NUL", func(t *testing.T) {
		ts := startServer(t, Config{})
		c := dial(t, ts.Addr())
		c.open()
		data := "<13>Nov 21 10:00:00 mail postfix/smtpd: x\n<13>Nov 21 10:00:00 mail dovecot: imap-login: Login: user=<u>, rip=192.0.2.9\x00\n3 syslog 1 z"
		txnr := c.send(cmdSyslog, data)
		d := ts.next(t)
		if string(d.Raw) != data {
			t.Fatalf("Raw %q, want the whole DATA", d.Raw)
		}
		ts.noDelivery(t, 50*time.Millisecond)
		d.Ack()
		c.expectRsp(txnr, rspOK)
	})
	t.Run("DATALEN shorter than the message", func(t *testing.T) {
		st := new(Stats)
		ts := startServer(t, Config{Stats: st})
		c := dial(t, ts.Addr())
		c.open()
		c.raw("2 syslog 3 hello\n3 syslog 5 world\n")
		c.expectServerClose()
		ts.noDelivery(t, 50*time.Millisecond)
		waitClosed(t, st, reasonBadTrailer, 1)
	})
	t.Run("DATALEN longer than the message", func(t *testing.T) {
		ts := startServer(t, Config{})
		c := dial(t, ts.Addr())
		c.open()
		inner := "ab\n3 syslog 5 hello"
		c.raw("2 syslog " + strconv.Itoa(len(inner)) + " " + inner + "\n")
		d := ts.next(t)
		if string(d.Raw) != inner {
			t.Fatalf("Raw %q, want %q", d.Raw, inner)
		}
		ts.noDelivery(t, 50*time.Millisecond)
		d.Ack()
		c.expectRsp(2, rspOK)
	})
}

// TestOpenTimeoutHoldsWithHints: a client that never opens cannot keep its
// session past OpenTimeout by sending hints (TXNR 0, ignored) with the
// first octet of the next one always already sent, so that the reader
// never waits between frames.
func TestOpenTimeoutHoldsWithHints(t *testing.T) {
	st := new(Stats)
	ts := startServer(t, Config{OpenTimeout: 300 * time.Millisecond, FrameTimeout: 2 * time.Second, Stats: st})
	conn, err := net.Dial("tcp", ts.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "0 x 0\n0"); err != nil {
		t.Fatal(err)
	}
	closed := make(chan time.Duration, 1)
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		closed <- time.Since(start)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case d := <-closed:
			if d > 5*time.Second { // far above 300 ms: a loaded machine is slow, but hints must not reset it
				t.Fatalf("session closed after %s, OpenTimeout 300ms", d)
			}
			waitClosed(t, st, reasonOpenTimeout, 1)
			return
		case <-tick.C:
			if time.Since(start) > 10*time.Second {
				t.Fatal("session still open 10 s after connecting, without an open; OpenTimeout 300ms")
			}
			_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(conn, " x 0\n0")
		}
	}
}

// TestShutdownWithUnreadAnswers: a client that never reads its answers
// cannot hold a stopping relaygate longer than DrainTimeout: the writer
// blocked on a full socket gives up with the drain, not after the whole
// WriteTimeout.
func TestShutdownWithUnreadAnswers(t *testing.T) {
	// Small socket buffers on both sides, so that a few thousand answers
	// fill them (accepted sockets inherit SO_SNDBUF from the listener).
	small := func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}
	srv, err := Listen(Config{Addr: "127.0.0.1:0", Allow: loopback, Control: small,
		DrainTimeout: 300 * time.Millisecond, WriteTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan Delivery, 64)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, out) }()
	go func() {
		for d := range out {
			d.Ack() // everything is acknowledged at once
		}
	}()
	defer close(out)

	conn, err := net.DialTCP("tcp", nil, srv.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	var frames []byte
	frames = appendFrame(frames, 1, cmdOpen, []byte(librelpOffers))
	for txnr := uint32(2); txnr < 50_000; txnr++ {
		frames = appendFrame(frames, txnr, cmdSyslog, []byte("x"))
	}
	go func() {
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, _ = conn.Write(frames) // blocks once relaygate stops reading
	}()
	// Until the answers stop moving: the writer is blocked.
	var last int64 = -1
	for range 100 {
		time.Sleep(100 * time.Millisecond)
		n := srv.stats.acked.Load()
		if n == last && n > 0 {
			break
		}
		last = n
	}
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("Serve did not return within 90 s")
	}
	if d := time.Since(start); d > 30*time.Second { // far below the WriteTimeout that would otherwise hold it
		t.Fatalf("Serve returned %s after its context ended, DrainTimeout 300ms", d)
	}
}

// TestDeliveryGone: Gone turns true once the session has ended, so that a
// consumer holding acknowledgements may let them go.
func TestDeliveryGone(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.Addr())
	c.open()
	c.send(cmdSyslog, "a")
	d := ts.next(t)
	if d.Gone() {
		t.Fatal("Gone while the session is open")
	}
	c.conn.Close()
	deadline := time.Now().Add(testutil.EventuallyFloor)
	for !d.Gone() {
		if time.Now().After(deadline) {
			t.Fatal("not Gone 20 s after the client closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.Ack() // does nothing
	if (Delivery{}).Gone() != true {
		t.Error("the zero Delivery is not Gone")
	}
}
