package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/receiver/relp/relptest"
)

// TestTakeoverRELP: a RELP sender streams logins, each sent again on a new
// session until it is answered (as librelp does), while a second relaygate
// replaces the first with -takeover. The first answers what is durable and
// closes its sessions; the sender's new session reaches the second (bound
// beside the first on the -relp port); every login answered, and every
// login sent, is in the second one's map.
func TestTakeoverRELP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relpAddr := ln.Addr().String()
	ln.Close()
	mapPath := filepath.Join(t.TempDir(), "pbs.cdb")
	args := []string{"-map", mapPath, "-flush", "50ms", "-tcp", "", "-relp", relpAddr}
	first := startProc(t, args...)

	var session *relptest.Client
	dial := func() error {
		if session != nil {
			session.Close()
		}
		c, err := relptest.Dial(relpAddr)
		if err != nil {
			return err
		}
		session = c
		return c.Open(5 * time.Second)
	}
	// send sends one login until it is answered 200, on a new session
	// whenever the one it was on ends first.
	send := func(i int) error {
		deadline := time.Now().Add(20 * time.Second)
		var last error
		for time.Now().Before(deadline) {
			if session == nil {
				if last = dial(); last != nil {
					session = nil
					time.Sleep(20 * time.Millisecond)
					continue
				}
			}
			txnr, err := session.Syslog(loginLine(restartAddr(i)))
			if err == nil {
				var f relptest.Frame
				f, err = session.Read(10 * time.Second)
				if err == nil && f.Txnr == txnr && strings.HasPrefix(f.Data, "200 OK") {
					return nil
				}
				if err == nil {
					err = fmt.Errorf("answer %+v", f)
				}
			}
			last = err
			session.Close()
			session = nil
		}
		return fmt.Errorf("login %d not answered within 20 s (last: %v)", i, last)
	}
	n := 0
	for ; n < 10; n++ {
		if err := send(n); err != nil {
			t.Fatal(err)
		}
	}
	second := startProc(t, append(args, "-udp", first.udp, "-takeover")...)
	for ; ; n++ {
		if err := send(n); err != nil {
			t.Fatal(err)
		}
		select {
		case <-first.exited:
		default:
			continue
		}
		break
	}
	for range 10 { // on the second alone
		n++
		if err := send(n); err != nil {
			t.Fatal(err)
		}
	}
	n++
	session.Close()
	if code := first.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the first relaygate exited %d", code)
	}
	if code := second.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("the second relaygate exited %d", code)
	}
	keys, missing := missingLogins(t, mapPath, n)
	t.Logf("%d logins answered over RELP across the takeover, %d in the map", n, len(keys))
	if len(missing) > 0 {
		t.Fatalf("%d of %d logins lost in the takeover: %v", len(missing), n, missing[:min(5, len(missing))])
	}
	if !strings.Contains(second.log(), `"relp":"`+relpAddr+`"`) {
		t.Errorf("the second relaygate's startup line does not name the -relp address")
	}
}
