package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestServeFlagsConnLimitsAndUnixSocket(t *testing.T) {
	base := []string{"-udp", "127.0.0.1:0"}
	cfg, err := parseServeFlags(base, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.maxConnsPerHost != 16 || cfg.unixMode != 0o660 || cfg.unixGroup != "" {
		t.Errorf("defaults: per host %d, unix mode %#o, group %q", cfg.maxConnsPerHost, cfg.unixMode, cfg.unixGroup)
	}
	if cfg, err = parseServeFlags(append(base, "-max-conns", "8"), io.Discard); err != nil || cfg.maxConnsPerHost != 2 {
		t.Errorf("-max-conns 8: per host %d, %v", cfg.maxConnsPerHost, err)
	}
	if cfg, err = parseServeFlags(append(base, "-unix", "/run/x.sock", "-unix-mode", "600", "-unix-group", "nogroup"), io.Discard); err != nil || cfg.unixMode != 0o600 || cfg.unixGroup != "nogroup" {
		t.Errorf("-unix-mode 600: %#o %q, %v", cfg.unixMode, cfg.unixGroup, err)
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

// A group that does not exist stops relaygate at startup, naming it.
func TestUnixGroupMustExist(t *testing.T) {
	dir := t.TempDir()
	cfg, err := parseServeFlags([]string{"-udp", "", "-tcp", "", "-mynetworks", "none", "-map", filepath.Join(dir, "pbs.cdb"),
		"-unix", filepath.Join(dir, "relaygate.sock"), "-unix-group", "no-such-group-h3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDaemon(context.Background(), cfg, zerolog.Nop(), time.Now)
	if err == nil {
		d.recv.Close()
		t.Fatal("started with a group that does not exist")
	}
	if !strings.Contains(err.Error(), `-unix-group "no-such-group-h3": no such group`) {
		t.Errorf("error %q does not name the group", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "relaygate.sock")); err == nil {
		t.Error("socket created although startup failed")
	}
}

// Connections refused at accept are counted by reason, in /metrics and in
// the shutdown line's counters.
func TestConnRefusalsExported(t *testing.T) {
	d := startDaemon(t, "-map", filepath.Join(t.TempDir(), "pbs.cdb"), "-max-conns", "4", "-max-conns-per-host", "1")
	addr := d.recv.TCPAddr().String()
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	waitFor(t, 2*time.Second, "first connection open", func() bool { return d.rstats.ConnectionsOpen.Load() == 1 })
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	waitFor(t, 2*time.Second, "per-host refusal", func() bool {
		m := scrape(t, d.mon.addr())
		return m[`relaygate_connections_refused_total{reason="per_host"}`] == 1
	})
	m := scrape(t, d.mon.addr())
	for _, reason := range []string{"max_conns", "not_allowed"} {
		if v, ok := m[`relaygate_connections_refused_total{reason="`+reason+`"}`]; !ok || v != 0 {
			t.Errorf("%s: %v (present %v), want 0", reason, v, ok)
		}
	}
	c := d.counters()
	if c["connections_refused_per_host"] != int64(1) || c["connections_refused_max_conns"] != int64(0) || c["connections_refused_not_allowed"] != int64(0) {
		t.Errorf("counters %v", c)
	}
}
