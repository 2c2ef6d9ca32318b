package main

// relaygate as a real process: a restart after SIGTERM or kill -9 keeps
// its grants, and inputs that crashed go-syslog's server leave it granting.

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

func TestRestartKeepsGrants(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			mapPath := filepath.Join(dir, "pbs.cdb")
			p := startProc(t, "-map", mapPath, "-flush", "100ms")
			sendUDP(t, p.udp, fmt.Sprintf(dovecotLogin, "192.0.2.10"))
			sendTCP(t, p.tcp, fmt.Sprintf(courier5424, "198.51.100.7")+"\n")
			testutil.Eventually(t, 2*time.Second, "both logins in the map", func() bool {
				return inMap(t, mapPath, "192.0.2.10") && inMap(t, mapPath, "198.51.100.7")
			})
			code := p.stop(t, sig, 2*time.Second)
			if sig == syscall.SIGTERM && code != 0 {
				t.Fatalf("exit code after SIGTERM = %d, want 0", code)
			}
			startProc(t, "-map", mapPath, "-flush", "100ms")
			for _, a := range []string{"192.0.2.10", "198.51.100.7"} {
				if !inMap(t, mapPath, a) {
					t.Errorf("%s lost across a restart after %v", a, sig)
				}
			}
		})
	}
}

func TestCrashInputsLeaveDaemonGranting(t *testing.T) {
	dir := t.TempDir()
	mapPath := filepath.Join(dir, "pbs.cdb")
	p := startProc(t, "-map", mapPath, "-flush", "100ms")
	crash := []string{"<13>", "<13>Nov 21 10:00:00 host", "-5 <13>abc"}
	sendUDP(t, p.udp, crash...)
	for _, c := range crash {
		sendTCP(t, p.tcp, c+"\n")
		sendTCP(t, p.tcp, c) // and unterminated, closing the connection
	}
	sendTCP(t, p.tcp, "-5 <13>abc")
	sendUDP(t, p.udp, fmt.Sprintf(dovecotLogin, "192.0.2.20"))
	sendTCP(t, p.tcp, octet(fmt.Sprintf(courier5424, "192.0.2.21")))
	testutil.Eventually(t, 2*time.Second, "logins after the crash inputs", func() bool {
		return inMap(t, mapPath, "192.0.2.20") && inMap(t, mapPath, "192.0.2.21")
	})
	select {
	case <-p.exited:
		t.Fatalf("relaygate died:\n%s", p.log())
	default:
	}
	if code := p.stop(t, syscall.SIGTERM, 2*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
