package main

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/internal/testutil/sendtest"
)

// TestStatusListsLiveGrants: relaygate status shows each grant with its
// user, daemon, host, time left and open session, straight from the
// running daemon.
func TestStatusListsLiveGrants(t *testing.T) {
	d := launchDaemon(t, zerolog.New(zerolog.NewTestWriter(t)), "-udp", "127.0.0.1:0", "-tcp", "", "-metrics", "127.0.0.1:0",
		"-mynetworks", "none", "-map", filepath.Join(t.TempDir(), "pbs.cdb"))
	sendtest.UDP(t, d.UDPAddr().String(),
		"<22>Nov 21 10:00:00 mx1 dovecot[812]: imap-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1, mpid=1, session=<s1>",
		"<22>Nov 21 10:00:00 mx2 dovecot: pop3-login: Login: user=<bob>, method=PLAIN, rip=2001:db8::5, lip=192.0.2.1")
	testutil.Eventually(t, 3*time.Second, "both logins granted", func() bool {
		return d.Granted(netip.MustParseAddr("192.0.2.10")) && d.Granted(netip.MustParseAddr("2001:db8::5"))
	})

	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"status", "-metrics", d.MetricsAddr()}, nil, &out, &errOut); code != 0 {
		t.Fatalf("status exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("status output:\n%s", out.String())
	}
	for _, f := range []string{"192.0.2.10", "alice", "dovecot", "mx1", "logout+30m0s", "open (1)"} {
		if !strings.Contains(lines[1], f) {
			t.Errorf("status line %q lacks %q", lines[1], f)
		}
	}
	for _, f := range []string{"2001:db8::5", "bob", "mx2"} {
		if !strings.Contains(lines[2], f) {
			t.Errorf("status line %q lacks %q", lines[2], f)
		}
	}
	if !strings.Contains(lines[2], " 30m0s ") && !strings.Contains(lines[2], " 29m5") {
		t.Errorf("status line %q: time left not about 30m", lines[2])
	}
	if code := run(context.Background(), []string{"status", "-metrics", "127.0.0.1:1"}, nil, io.Discard, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "is relaygate running with -metrics") {
		t.Errorf("status against nothing: exit %d, %s", code, errOut.String())
	}
}
