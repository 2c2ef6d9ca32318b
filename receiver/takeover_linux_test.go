package receiver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/rs/zerolog"
)

func listenFor(t *testing.T, cfg Config) (*Receiver, error) {
	t.Helper()
	cfg.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t))
	r, err := Listen(cfg)
	if err == nil {
		t.Cleanup(r.Close)
	}
	return r, err
}

// TestSecondListenerRefused: the listeners admit a takeover's
// SO_REUSEPORT, but a relaygate started normally on a port already taken
// (by a relaygate or anything else) must still fail with "address already
// in use", on UDP, TCP and TLS's TCP, and not silently share the port.
func TestSecondListenerRefused(t *testing.T) {
	first, err := listenFor(t, Config{UDP: "127.0.0.1:0", TCP: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []Config{
		{UDP: first.UDPAddr().String()},
		{TCP: first.TCPAddr().String()},
	} {
		if _, err := listenFor(t, cfg); !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "-takeover") {
			t.Errorf("second listener %+v: err %v, want address in use naming -takeover", cfg, err)
		}
	}
	// Nor may a takeover join a socket that is not a relaygate's.
	plain, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := listenFor(t, Config{UDP: plain.LocalAddr().String(), Takeover: true}); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("takeover of a foreign UDP socket: err %v, want address in use", err)
	}
}

// TestTakeoverLosesNoDatagram: a steady stream of datagrams from one
// sender; a second receiver joins with Takeover and steers; the first
// then stops. Every datagram sent reaches one of the two: none meets a
// closed port or is discarded with the first one's socket buffer.
func TestTakeoverLosesNoDatagram(t *testing.T) {
	oldR, err := listenFor(t, Config{UDP: "127.0.0.1:0", TCP: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	addr := oldR.UDPAddr().String()
	got := make(chan string, 1<<16)
	serve := func(r *Receiver) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		out := make(chan Message)
		done := make(chan struct{})
		go func() { r.Serve(ctx, out); close(done) }()
		go func() {
			for m := range out {
				got <- m.Text
			}
		}()
		return func() { cancel(); <-done; close(out) }
	}
	stopOld := serve(oldR)
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := 0
	send := func(n int) {
		for range n {
			fmt.Fprintf(c, "<22>Nov 21 10:00:00 mx1 dovecot[1]: n=%d", sent)
			sent++
		}
	}
	send(500)
	newR, err := listenFor(t, Config{UDP: addr, TCP: oldR.TCPAddr().String(), Takeover: true})
	if err != nil {
		t.Fatal(err)
	}
	send(500) // to either socket, by the kernel's hash
	if err := newR.Steer(); err != nil {
		t.Fatal(err)
	}
	stopNew := serve(newR)
	send(500) // to the new socket
	// The old one's socket still holds what it has not read: the stop
	// must read it, not discard it.
	stopOld()
	send(500)
	seen := map[string]bool{}
	deadline := time.After(testutil.EventuallyFloor)
	for len(seen) < sent {
		select {
		case s := <-got:
			seen[s] = true
		case <-deadline:
			t.Fatalf("received %d of %d datagrams", len(seen), sent)
		}
	}
	stopNew()
	// The takeover's listeners admit the next takeover too.
	if _, err := listenFor(t, Config{UDP: addr, Takeover: true}); err != nil {
		t.Fatalf("a second takeover: %v", err)
	}
}

// TestDrainReadsQueuedDatagrams: datagrams queued in the socket when Serve
// is told to stop are delivered, not discarded with the socket. With a
// drainQuiet of a nanosecond every read finds its deadline already past,
// as a reader does that the scheduler started late on a loaded machine or
// that waited on a slow consumer: the drain must still read the socket
// empty (CI once lost 1,000 of 2,000 datagrams in
// TestTakeoverLosesNoDatagram this way).
func TestDrainReadsQueuedDatagrams(t *testing.T) {
	for _, quiet := range []time.Duration{drainQuiet, time.Nanosecond} {
		t.Run(quiet.String(), func(t *testing.T) {
			r, err := listenFor(t, Config{UDP: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			r.drainQuiet = quiet
			c, err := net.Dial("udp", r.UDPAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			const n = 1000
			for i := range n {
				fmt.Fprintf(c, "<22>Nov 21 10:00:00 mx1 dovecot[1]: n=%d", i)
			}
			// Serve starts with its context already ended: everything it
			// reads is read by the drain.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			out := make(chan Message, n)
			r.Serve(ctx, out)
			if len(out) != n {
				t.Fatalf("drained %d of %d queued datagrams", len(out), n)
			}
		})
	}
}

// TestTakeoverKeepsSuccessorsUnixSocket: a takeover renames its own unix
// socket over the path; the predecessor's Close must not then remove the
// path, which is the successor's socket now.
func TestTakeoverKeepsSuccessorsUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.sock")
	oldR, err := listenFor(t, Config{Unix: path})
	if err != nil {
		t.Fatal(err)
	}
	newR, err := listenFor(t, Config{Unix: path, Takeover: true})
	if err != nil {
		t.Fatal(err)
	}
	oldR.Close()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Message, 1)
	done := make(chan struct{})
	go func() { newR.Serve(ctx, out); close(done) }()
	defer func() { cancel(); <-done }()
	c, err := net.Dial("unixgram", path)
	if err != nil {
		t.Fatalf("the successor's socket is gone after the predecessor closed: %v", err)
	}
	defer c.Close()
	fmt.Fprint(c, login3164)
	select {
	case m := <-out:
		if m.Program != "dovecot" {
			t.Fatalf("got %+v", m)
		}
	case <-time.After(testutil.EventuallyFloor):
		t.Fatal("the successor received nothing on the unix socket")
	}
}
