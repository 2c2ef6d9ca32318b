package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/origin"
	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/internal/testutil/sendtest"
)

// originLogin is a Dovecot login over RFC 5424 with the origin element sd
// ("-" for none).
func originLogin(sd, rip string) string {
	return fmt.Sprintf("<22>1 2026-11-21T10:00:00Z mx1 dovecot 812 - %s imap-login: Login: user=<bob>, method=PLAIN, rip=%s, lip=192.0.2.1, mpid=1, session=<s%s>", sd, rip, rip)
}

func elem(uid string) string {
	return `[relaygate@32473 uid="` + uid + `" gid="0" pid="812" exe="/usr/lib/dovecot/log" appname="log"]`
}

// TestOriginPolicyInTheDaemon drives the whole chain: the receiver reads
// the origin element (believed from 127.0.0.1 only), the pipeline asks the
// policy before the correlator, and refusals are counted by reason. The
// sentinel login, sent last over the same socket, shows every line before
// it was handled.
func TestOriginPolicyInTheDaemon(t *testing.T) {
	for _, mode := range []origin.Mode{origin.ModeVerify, origin.ModeRequire} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			defs := filepath.Join(dir, "login.defs")
			testutil.WriteFile(t, defs, "UID_MIN 1000\n", 0o644)
			pins := filepath.Join(dir, "origin.yaml")
			testutil.WriteFile(t, pins, "daemons:\n  courier:\n    uids: [5000]\n", 0o644)
			d := startDaemon(t, func(c *Config) {
				c.Origin = OriginConfig{Mode: mode, File: pins, LoginDefs: defs,
					From: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
			})
			udp := d.UDPAddr().String()
			send := func(from, msg string) { sendUDPFrom(t, from, udp, msg) }
			send("127.0.0.1", originLogin(elem("0"), "192.0.2.10"))                                                              // root: granted
			send("127.0.0.1", originLogin(elem("110"), "192.0.2.11"))                                                            // system account: granted
			send("127.0.0.1", originLogin(elem("65534"), "192.0.2.12"))                                                          // nobody: login_user
			send("127.0.0.1", originLogin(elem("1000"), "192.0.2.13"))                                                           // first login uid
			send("127.0.0.2", originLogin(elem("0"), "192.0.2.14"))                                                              // untrusted sender
			send("127.0.0.1", originLogin("-", "192.0.2.15"))                                                                    // no origin
			send("127.0.0.1", strings.Replace(originLogin(elem("0"), "192.0.2.16"), "user=<bob>", "user=<[relaygate@32473>", 1)) // look-alike in text
			send("127.0.0.1", originLogin(`[relaygate@32473 uid="x"]`, "192.0.2.17"))                                            // malformed
			send("127.0.0.1", originLogin(elem("0"), "192.0.2.99"))                                                              // sentinel
			sentinel := netip.MustParseAddr("192.0.2.99")
			testutil.Eventually(t, 5*time.Second, "the sentinel login granted", func() bool { return d.Granted(sentinel) })

			want := map[string]bool{
				"192.0.2.10": true, "192.0.2.11": true, "192.0.2.12": false, "192.0.2.13": false,
				"192.0.2.14": false, "192.0.2.15": mode == origin.ModeVerify, "192.0.2.16": false, "192.0.2.17": false,
			}
			for addr, granted := range want {
				if got := d.Granted(netip.MustParseAddr(addr)); got != granted {
					t.Errorf("%s granted = %v, want %v", addr, got, granted)
				}
			}
			m := scrape(t, d.MetricsAddr())
			noOrigin := 0.0
			if mode == origin.ModeRequire {
				noOrigin = 1
			}
			for reason, n := range map[string]float64{
				"login_user": 2, "untrusted_sender": 1, "in_text": 1, "malformed": 1, "no_origin": noOrigin, "uid_not_pinned": 0,
			} {
				key := `relaygate_origin_refused_total{reason="` + reason + `"}`
				if got, ok := m[key]; !ok || got != n {
					t.Errorf("%s = %v (present %v), want %v", key, got, ok, n)
				}
			}
		})
	}
}

// TestOriginFileReloaded: a bad origin file is refused at start with an
// error naming it, and a reload that breaks it keeps the running policy.
func TestOriginFileReloaded(t *testing.T) {
	dir := t.TempDir()
	pins := filepath.Join(dir, "origin.yaml")
	testutil.WriteFile(t, pins, "daemons:\n  nosuchdaemon:\n    uids: [0]\n", 0o644)
	cfg := testConfig(t)
	cfg.Origin = OriginConfig{Mode: origin.ModeRequire, File: pins}
	if _, err := loadReloadable(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "-origin-file") || !strings.Contains(err.Error(), "nosuchdaemon") {
		t.Fatalf("bad origin file: %v", err)
	}
	testutil.WriteFile(t, pins, "daemons:\n  dovecot:\n    uids: [0]\n", 0o644)
	d := startDaemon(t, func(c *Config) {
		c.Origin = OriginConfig{Mode: origin.ModeRequire, File: pins, From: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	})
	if err := os.WriteFile(pins, []byte("daemons: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(context.Background()); err == nil {
		t.Fatal("a broken origin file was applied")
	}
	sendtest.UDP(t, d.UDPAddr().String(), originLogin(elem("0"), "192.0.2.20"))
	testutil.Eventually(t, 5*time.Second, "a root login granted under the kept policy", func() bool {
		return d.Granted(netip.MustParseAddr("192.0.2.20"))
	})
}

func TestParseOriginFrom(t *testing.T) {
	o, err := ParseOriginFrom(OriginConfig{}, " 127.0.0.1/32, tls,unix, unix:0 ,unix:4242")
	if err != nil {
		t.Fatal(err)
	}
	if !o.FromTLS || len(o.From) != 1 || o.From[0].String() != "127.0.0.1/32" || fmt.Sprint(o.FromUnix) != "[0 0 4242]" {
		t.Fatalf("%+v", o)
	}
	if o, err := ParseOriginFrom(OriginConfig{}, "unix:root"); err != nil || fmt.Sprint(o.FromUnix) != "[0]" {
		t.Fatalf("unix:root: %+v %v", o, err)
	}
	for _, bad := range []string{"unix:no-such-user-here", "10.0.0.0/33", "tlsx", "unix:-1", "unix:65534", "unix:nobody"} {
		if _, err := ParseOriginFrom(OriginConfig{}, bad); err == nil || !strings.Contains(err.Error(), "-origin-from") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
