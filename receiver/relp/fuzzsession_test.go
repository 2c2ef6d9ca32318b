package relp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// FuzzRELPSession feeds any input to a live session over loopback, with a
// consumer that acknowledges the messages whose DATA begins with "a" and
// never the others, and holds the server's answers to the input: every
// answer is to a frame the client sent, in order, once; a syslog frame is
// answered 200 only if it was acknowledged (or skipped as too long); and
// the server neither panics nor hangs.
func FuzzRELPSession(f *testing.F) {
	open := string(appendFrame(nil, 1, cmdOpen, []byte(librelpOffers)))
	for _, s := range []string{
		open + "2 syslog 1 a\n3 syslog 1 b\n4 syslog 1 a\n5 close 0\n",
		open + "2 syslog 2 ab\n3 close 0\n",
		open + "0 syslog 1 a\n2 syslog 1 a\n",
		open + "1 open 0\n", open + open, "2 syslog 1 a\n", "1 syslog 1 a\n",
		open + "3 syslog 1 a\n", open + "2 rsp 6 200 OK\n", open + "2 close 0\n2 syslog 1 a\n",
		open + "2 syslog 3 a\nb\n3 syslog 2 a\x00\n", open + "2 syslog 5000 " + string(bytes.Repeat([]byte("a"), 5000)) + "\n3 syslog 1 a\n",
		open + "2 open 5000 x", open + "2 syslog 1 a", open + "00002 syslog 01 a\n",
		"1 open 18 relp_version=0\\ncommands=syslog\n",
	} {
		f.Add([]byte(s))
	}
	// Limits high enough that parallel workers are not refused.
	srv, err := Listen(Config{Addr: "127.0.0.1:0", Allow: loopback, MaxMessage: 4096, MaxConns: 4096, MaxConnsPerHost: 4096,
		OpenTimeout: time.Second, FrameTimeout: time.Second, DrainTimeout: 200 * time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	out := make(chan Delivery, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ctx, out) }()
	go func() {
		for d := range out {
			if bytes.HasPrefix(d.Raw, []byte("a")) {
				d.Ack()
			}
		}
	}()
	f.Cleanup(func() { cancel(); <-served; close(out) })

	f.Fuzz(func(t *testing.T, in []byte) {
		sent, _ := refParse(in, 4096)
		conn, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			_, _ = conn.Write(in)
			_ = conn.(*net.TCPConn).CloseWrite()
		}()
		fr := newFrameReader(conn, 1<<20)
		next := 0 // the index in sent after the last frame answered
		for {
			fm, err := fr.next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("input %q: the server neither answered nor closed within 10 s", in)
				}
				if reason, ok := frameReason(err); ok && reason != reasonTruncated {
					t.Fatalf("input %q: the server sent a bad frame: %v", in, err)
				}
				return // reset, or cut at the close
			}
			if fm.txnr == 0 {
				if string(fm.raw) != "serverclose" {
					t.Fatalf("input %q: hint %q", in, fm.raw)
				}
				continue
			}
			if string(fm.raw) != "rsp" {
				t.Fatalf("input %q: command %q from the server", in, fm.raw)
			}
			i := next
			for i < len(sent) && (sent[i].txnr == 0 || uint32(sent[i].txnr) != fm.txnr) {
				i++
			}
			if i == len(sent) {
				t.Fatalf("input %q: answer to %d, which is not a frame sent after the last answered", in, fm.txnr)
			}
			g := sent[i]
			next = i + 1
			if g.command == cmdSyslog && bytes.HasPrefix(fm.data, []byte("200")) && g.skipped == 0 && !bytes.HasPrefix([]byte(g.data), []byte("a")) {
				t.Fatalf("input %q: syslog %d (%q) answered 200 without its acknowledgement", in, fm.txnr, g.data)
			}
		}
	})
}
