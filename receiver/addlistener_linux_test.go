package receiver

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
)

// TestAddListener: a listener of the daemon's that the receiver does not
// serve (RELP), added with AddListener, admits a takeover's JoinGroup
// bind as the receiver's own do, and is steered with them; one not added
// stays exclusive.
func TestAddListener(t *testing.T) {
	r, err := listenFor(t, Config{TCP: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	added, err := plainTCP(nil, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer added.Close()
	if err := r.AddListener("relp", added.(*net.TCPListener)); err != nil {
		t.Fatal(err)
	}
	alone, err := plainTCP(nil, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer alone.Close()

	second, err := plainTCP(JoinGroup, added.Addr().String())
	if err != nil {
		t.Fatalf("a takeover's bind beside the added listener: %v", err)
	}
	defer second.Close()
	if _, err := plainTCP(JoinGroup, alone.Addr().String()); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("a takeover's bind beside a listener not added: %v, want address in use", err)
	}
	if _, err := plainTCP(nil, added.Addr().String()); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("a plain bind beside the added listener: %v, want address in use", err)
	}

	// The takeover's side: bound with JoinGroup, added, steered.
	tr, err := listenFor(t, Config{TCP: r.TCPAddr().String(), Takeover: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.AddListener("relp", second.(*net.TCPListener)); err != nil {
		t.Fatal(err)
	}
	if err := tr.Steer(); err != nil {
		t.Fatalf("Steer with the added listener: %v", err)
	}
	if err := tr.Unsteer(); err != nil {
		t.Fatalf("Unsteer with the added listener: %v", err)
	}
}

// plainTCP listens on plain TCP (not MPTCP), as relp.Listen does.
func plainTCP(control func(string, string, syscall.RawConn) error, addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: control}
	lc.SetMultipathTCP(false)
	return lc.Listen(context.Background(), "tcp", addr)
}
