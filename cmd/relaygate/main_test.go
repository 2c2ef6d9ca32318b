package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/internal/daemon"
)

// TestMain lets the test binary stand in for the relaygate binary, so the
// process-level tests (signals, kill -9) need no separate build.
func TestMain(m *testing.M) {
	if os.Getenv("RELAYGATE_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

const (
	dovecotLogin = "<22>Nov 21 10:00:00 mx1 dovecot[812]: pop3-login: Login: user=<bob>, method=PLAIN, rip=%s, lip=192.0.2.1, mpid=1, session=<abc>"
	courier5424  = "<22>1 2026-11-21T10:00:00.000001+00:00 mx1 imapd-ssl 4711 - - LOGIN, user=alice, ip=[::ffff:%s], port=[50412], protocol=IMAP"
)

func loginLine(addr string) string { return fmt.Sprintf(dovecotLogin, addr) }

// launchDaemon starts an in-process daemon on what `relaygate serve args`
// makes of its flags and stops it when the test ends.
func launchDaemon(t testing.TB, log zerolog.Logger, args ...string) *daemon.Daemon {
	t.Helper()
	cfg, err := parseServeFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.New(ctx, cfg.Config, log, cdbwriter.SystemClock{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return d
}
