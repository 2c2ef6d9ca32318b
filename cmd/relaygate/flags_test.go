package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/relaygate/relaygate/internal/grants"
	"github.com/relaygate/relaygate/receiver"
)

func TestServeFlagsConnLimitsAndUnixSocket(t *testing.T) {
	base := []string{"-udp", "127.0.0.1:0"}
	cfg, err := parseServeFlags(base, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConnsPerHost != 16 || cfg.UnixMode != 0o660 || cfg.UnixGroup != "" {
		t.Errorf("defaults: per host %d, unix mode %#o, group %q", cfg.MaxConnsPerHost, cfg.UnixMode, cfg.UnixGroup)
	}
	if cfg, err = parseServeFlags(append(base, "-max-conns", "8"), io.Discard); err != nil || cfg.MaxConnsPerHost != 2 {
		t.Errorf("-max-conns 8: per host %d, %v", cfg.MaxConnsPerHost, err)
	}
	if cfg, err = parseServeFlags(append(base, "-unix", "/run/x.sock", "-unix-mode", "600", "-unix-group", "nogroup"), io.Discard); err != nil || cfg.UnixMode != 0o600 || cfg.UnixGroup != "nogroup" {
		t.Errorf("-unix-mode 600: %#o %q, %v", cfg.UnixMode, cfg.UnixGroup, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-max-conns-per-host", "-1"}, "-max-conns-per-host -1"},
		{[]string{"-max-conns", "4", "-max-conns-per-host", "5"}, "more than -max-conns 4"},
		{[]string{"-unix", "/run/x.sock", "-unix-mode", "0"}, `-unix-mode "0"`},
		{[]string{"-unix", "/run/x.sock", "-unix-mode", "1777"}, `-unix-mode "1777"`},
		{[]string{"-unix", "/run/x.sock", "-unix-mode", "rw-rw----"}, "octal"},
		{[]string{"-unix", "/run/x.sock", "-unix-mode", "0668"}, "octal"},
		{[]string{"-unix-group", "nogroup"}, "-unix-group is only used with -unix"},
	} {
		if _, err := parseServeFlags(append(base, tc.args...), io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-grace", "0s"},
		{"-grace", "soon"},
		{"-allow", "300.1.1.1/8"},
		{"-exclude", "192.0.2.0/33"},
		{"-mynetworks", "sometimes"},
		{"-log-level", "loud"},
		{"-log-format", "xml"},
		{"-udp", "", "-tcp", ""},
		{"-mynetworks", "none", "-postfix-config", "/etc/postfix"},
		{"extra"},
	} {
		var stderr bytes.Buffer
		code := run(context.Background(), append([]string{"serve"}, args...), nil, io.Discard, &stderr)
		msg := strings.TrimSpace(stderr.String())
		if code == 0 || msg == "" {
			t.Errorf("relaygate serve %q: code %d, stderr %q; want a failure with a message", args, code, msg)
		}
	}
	if code := run(context.Background(), []string{"frobnicate"}, nil, io.Discard, io.Discard); code != 2 {
		t.Errorf("unknown command exit %d, want 2", code)
	}
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"serve", "-metrics", "9725"}, nil, io.Discard, &stderr); code == 0 || !strings.Contains(stderr.String(), "-metrics") {
		t.Errorf("bad -metrics: exit %d, %s", code, stderr.String())
	}
}

// TestFlagDefaultsAreTheLibraries: a flag's default is the library's own,
// not a copy that could drift from it.
func TestFlagDefaultsAreTheLibraries(t *testing.T) {
	cfg, err := parseServeFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConns != receiver.DefaultMaxConns || cfg.UnixMode != receiver.DefaultUnixMode ||
		cfg.UDPReadBuf != receiver.DefaultUDPReadBuffer || cfg.MaxConnsPerHost != receiver.DefaultMaxConnsPerHost(receiver.DefaultMaxConns) {
		t.Errorf("receiver defaults: %+v", cfg)
	}
	if cfg.MaxEntries != grants.DefaultMaxEntries || cfg.MaxSession != grants.DefaultMaxSession {
		t.Errorf("grant table defaults: max entries %d, max session %s", cfg.MaxEntries, cfg.MaxSession)
	}
}
