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
	"github.com/relaygate/relaygate/internal/testutil/sendtest"
)

func TestRestartKeepsGrants(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			mapPath := filepath.Join(dir, "pbs.cdb")
			p := startProc(t, "-map", mapPath, "-flush", "100ms")
			sendtest.UDP(t, p.udp, fmt.Sprintf(dovecotLogin, "192.0.2.10"))
			sendtest.TCP(t, p.tcp, fmt.Sprintf(courier5424, "198.51.100.7")+"\n")
			testutil.Eventually(t, 2*time.Second, "both logins in the map", func() bool {
				return sendtest.InMap(t, mapPath, "192.0.2.10") && sendtest.InMap(t, mapPath, "198.51.100.7")
			})
			code := p.stop(t, sig, 2*time.Second)
			if sig == syscall.SIGTERM && code != 0 {
				t.Fatalf("exit code after SIGTERM = %d, want 0", code)
			}
			startProc(t, "-map", mapPath, "-flush", "100ms")
			for _, a := range []string{"192.0.2.10", "198.51.100.7"} {
				if !sendtest.InMap(t, mapPath, a) {
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
	sendtest.UDP(t, p.udp, crash...)
	for _, c := range crash {
		sendtest.TCP(t, p.tcp, c+"\n")
		sendtest.TCP(t, p.tcp, c) // and unterminated, closing the connection
	}
	sendtest.TCP(t, p.tcp, "-5 <13>abc")
	sendtest.UDP(t, p.udp, fmt.Sprintf(dovecotLogin, "192.0.2.20"))
	sendtest.TCP(t, p.tcp, sendtest.Octet(fmt.Sprintf(courier5424, "192.0.2.21")))
	testutil.Eventually(t, 2*time.Second, "logins after the crash inputs", func() bool {
		return sendtest.InMap(t, mapPath, "192.0.2.20") && sendtest.InMap(t, mapPath, "192.0.2.21")
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
