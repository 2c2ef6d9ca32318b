package daemon

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/internal/origin"
	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/internal/testutil/sendtest"
	"github.com/relaygate/relaygate/receiver"
)

// policyReport is a report body as Dovecot 2.3's default attributes make it.
func policyReport(protocol, remote string, success bool) string {
	return fmt.Sprintf(`{"device_id":"","login":"alice","protocol":%q,"pwhash":"0fa1","remote":%q,"session_id":"kaC1D/1hMMl/AAAB","success":%v,"policy_reject":false,"tls":false}`,
		protocol, remote, success)
}

// postPolicy sends one request as Dovecot does and returns the status.
func postPolicy(t *testing.T, addr, command, secret, body string) int {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, "http://"+addr+"/?command="+command, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "dovecot/auth-policy-client")
	if secret != "" {
		r.Header.Set("X-API-Key", secret)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func writeSecret(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.secret")
	testutil.WriteFile(t, p, content, 0o640)
	return p
}

// TestDovecotPolicyGrantsThroughTheTable: a reported IMAP or POP3 login
// reaches the grant table and the map like a log line's, as daemon
// "dovecot-policy" and without a session (nothing would ever close it);
// -exclude applies; refused requests never grant (no log line is sent,
// so nothing else can grant); every result is a
// /metrics series and a key of the shutdown line.
func TestDovecotPolicyGrantsThroughTheTable(t *testing.T) {
	d := startDaemon(t, func(c *Config) {
		c.Exclude = []netip.Prefix{netip.MustParsePrefix("192.0.2.128/25")}
		c.DovecotPolicy = DovecotPolicyConfig{Addr: "127.0.0.1:0", SecretFile: writeSecret(t, "X-API-Key:s3cret")}
	})
	addr := d.DovecotPolicyAddr().String()
	for _, c := range []struct {
		protocol, remote, secret string
		success                  bool
		status                   int
	}{
		{"imap", "192.0.2.10", "s3cret", true, 200},
		{"pop3", "::ffff:192.0.2.11", "s3cret", true, 200},
		{"imap", "192.0.2.20", "s3cret", false, 200},      // failed authentication
		{"submission", "192.0.2.21", "s3cret", true, 200}, // another protocol
		{"imap", "192.0.2.22", "", true, 403},             // no secret
		{"imap", "192.0.2.23", "wrong", true, 403},        // wrong secret
		{"imap", "192.0.2.200", "s3cret", true, 200},      // -exclude
		{"imap", "169.254.0.1", "s3cret", true, 200},      // never granted
	} {
		if got := postPolicy(t, addr, "report", c.secret, policyReport(c.protocol, c.remote, c.success)); got != c.status {
			t.Errorf("%s %s: status %d, want %d", c.protocol, c.remote, got, c.status)
		}
	}
	if got := postPolicy(t, addr, "allow", "s3cret", policyReport("imap", "192.0.2.24", true)); got != 200 {
		t.Errorf("allow: status %d", got)
	}
	testutil.Eventually(t, 3*time.Second, "the map holds both reported logins", func() bool {
		return sendtest.InMap(t, d.cfg.MapPath, "192.0.2.10") && sendtest.InMap(t, d.cfg.MapPath, "192.0.2.11")
	})
	g, ok := d.lookup(netip.MustParseAddr("192.0.2.10"))
	if !ok || g.Daemon != "dovecot-policy" || g.User != "alice" || g.Host != "127.0.0.1" || g.Open() {
		t.Errorf("grant %+v", g)
	}
	if want := time.Now().Add(30 * time.Minute); g.Expires.Before(want.Add(-time.Minute)) || g.Expires.After(want.Add(time.Minute)) {
		t.Errorf("expires %v, want about -grace from now", g.Expires)
	}
	for _, ip := range []string{"192.0.2.20", "192.0.2.21", "192.0.2.22", "192.0.2.23", "192.0.2.24", "192.0.2.200", "169.254.0.1"} {
		if d.Granted(netip.MustParseAddr(ip)) {
			t.Errorf("%s granted", ip)
		}
	}
	m := scrape(t, d.MetricsAddr())
	for result, want := range map[string]float64{
		"granted": 3, "auth_failed": 1, "other_protocol": 1, "bad_secret": 2, "allow": 1, "bad_address": 1, "bad_json": 0, "busy": 0,
	} {
		if got := m[`relaygate_dovecot_policy_requests_total{result="`+result+`"}`]; got != want {
			t.Errorf("requests_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	if f := d.logFields(); f["dovecot_policy_requests_granted"] != 3.0 {
		t.Errorf("shutdown line: dovecot_policy_requests_granted = %v", f["dovecot_policy_requests_granted"])
	}
}

// TestDovecotPolicyAlone: no syslog listener at all, only the endpoint.
func TestDovecotPolicyAlone(t *testing.T) {
	d := startDaemon(t, func(c *Config) {
		c.UDP, c.TCP = "", ""
		c.DovecotPolicy = DovecotPolicyConfig{Addr: "127.0.0.1:0", SecretFile: writeSecret(t, "s3cret")}
	})
	if d.UDPAddr() != nil || d.TCPAddr() != nil {
		t.Fatal("syslog listeners without -udp and -tcp")
	}
	if got := postPolicy(t, d.DovecotPolicyAddr().String(), "report", "s3cret", policyReport("imap", "192.0.2.30", true)); got != 200 {
		t.Fatalf("status %d", got)
	}
	testutil.Eventually(t, 3*time.Second, "192.0.2.30 in the map", func() bool { return sendtest.InMap(t, d.cfg.MapPath, "192.0.2.30") })
}

// TestDovecotPolicyOff: without -dovecot-policy nothing listens and no
// series is exported.
func TestDovecotPolicyOff(t *testing.T) {
	d := startDaemon(t, nil)
	if d.DovecotPolicyAddr() != nil {
		t.Fatal("an endpoint without -dovecot-policy")
	}
	for series := range scrape(t, d.MetricsAddr()) {
		if strings.HasPrefix(series, "relaygate_dovecot_policy") {
			t.Errorf("series %s without -dovecot-policy", series)
		}
	}
}

// TestDovecotPolicyOriginRequire: with -origin require the endpoint
// needs a secret; with one, reports grant (they are not log lines, whose
// writer the origin check is about).
func TestDovecotPolicyOriginRequire(t *testing.T) {
	d := startDaemon(t, func(c *Config) {
		c.Origin.Mode = origin.ModeRequire
		c.Origin.LoginDefs = filepath.Join(t.TempDir(), "none") // UID_MIN: the default
		c.DovecotPolicy = DovecotPolicyConfig{Addr: "127.0.0.1:0", SecretFile: writeSecret(t, "s3cret")}
	})
	if got := postPolicy(t, d.DovecotPolicyAddr().String(), "report", "s3cret", policyReport("pop3", "2001:db8::5", true)); got != 200 {
		t.Fatalf("status %d", got)
	}
	testutil.Eventually(t, 3*time.Second, "2001:db8::5 granted", func() bool { return d.Granted(netip.MustParseAddr("2001:db8::5")) })
}

// TestDovecotPolicyBadSecretFileFailsStart: the daemon does not start on
// a secret file Dovecot would choke on.
func TestDovecotPolicyBadSecretFileFailsStart(t *testing.T) {
	cfg := testConfig(t)
	cfg.TakeoverTimeout = time.Second
	cfg.UDPReadBuf, cfg.MaxConns = receiver.DefaultUDPReadBuffer, receiver.DefaultMaxConns
	cfg.DovecotPolicy = DovecotPolicyConfig{Addr: "127.0.0.1:0", SecretFile: writeSecret(t, "X-API-Key:s3cret\n")}
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	_, err := New(context.Background(), cfg, zerolog.New(zerolog.NewTestWriter(t)), cdbwriter.SystemClock{})
	if err == nil || !strings.Contains(err.Error(), "-dovecot-policy-secret-file") || !strings.Contains(err.Error(), "line break") {
		t.Fatalf("New: %v", err)
	}
	// The map's lock was released: a daemon can start on it now.
	cfg.DovecotPolicy.SecretFile = writeSecret(t, "X-API-Key:s3cret")
	launch(t, cfg)
}

func TestDovecotPolicyCheck(t *testing.T) {
	secret := writeSecret(t, "s3cret")
	for _, c := range []struct {
		name     string
		policy   DovecotPolicyConfig
		mode     origin.Mode
		noSyslog bool
		wantAddr string
		wantErr  string
	}{
		{name: "off", policy: DovecotPolicyConfig{}},
		{name: "loopback", policy: DovecotPolicyConfig{Addr: "127.0.0.1:9726"}, wantAddr: "127.0.0.1:9726"},
		{name: "bare port is loopback", policy: DovecotPolicyConfig{Addr: "9726"}, wantAddr: "127.0.0.1:9726"},
		{name: "localhost", policy: DovecotPolicyConfig{Addr: "localhost:9726"}, wantAddr: "localhost:9726"},
		{name: "IPv6 loopback", policy: DovecotPolicyConfig{Addr: "[::1]:9726"}, wantAddr: "[::1]:9726"},
		{name: "all addresses need a secret", policy: DovecotPolicyConfig{Addr: ":9726"}, wantErr: "not a loopback address: -dovecot-policy-secret-file is required"},
		{name: "0.0.0.0 needs a secret", policy: DovecotPolicyConfig{Addr: "0.0.0.0:9726"}, wantErr: "-dovecot-policy-secret-file is required"},
		{name: "LAN needs a secret", policy: DovecotPolicyConfig{Addr: "192.0.2.1:9726"}, wantErr: "-dovecot-policy-secret-file is required"},
		{name: "host name needs a secret", policy: DovecotPolicyConfig{Addr: "mail.example.org:9726"}, wantErr: "-dovecot-policy-secret-file is required"},
		{name: "LAN with a secret", policy: DovecotPolicyConfig{Addr: "192.0.2.1:9726", SecretFile: secret}, wantAddr: "192.0.2.1:9726"},
		{name: "origin require needs a secret", policy: DovecotPolicyConfig{Addr: "127.0.0.1:9726"}, mode: origin.ModeRequire, wantErr: "-origin require: -dovecot-policy needs -dovecot-policy-secret-file"},
		{name: "origin require with a secret", policy: DovecotPolicyConfig{Addr: "127.0.0.1:9726", SecretFile: secret}, mode: origin.ModeRequire, wantAddr: "127.0.0.1:9726"},
		{name: "secret without endpoint", policy: DovecotPolicyConfig{SecretFile: secret}, wantErr: "-dovecot-policy-secret-file is only used with -dovecot-policy"},
		{name: "bad address", policy: DovecotPolicyConfig{Addr: "127.0.0.1"}, wantErr: "-dovecot-policy \"127.0.0.1\": want host:port"},
		{name: "only the endpoint", policy: DovecotPolicyConfig{Addr: "9726"}, noSyslog: true, wantAddr: "127.0.0.1:9726"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.TakeoverTimeout = time.Second
			cfg.UDPReadBuf, cfg.MaxConns = receiver.DefaultUDPReadBuffer, receiver.DefaultMaxConns
			cfg.DovecotPolicy, cfg.Origin.Mode = c.policy, c.mode
			if c.noSyslog {
				cfg.UDP, cfg.TCP = "", ""
			}
			err := cfg.Check()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Check: %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.DovecotPolicy.Addr != c.wantAddr {
				t.Fatalf("address %q, want %q", cfg.DovecotPolicy.Addr, c.wantAddr)
			}
		})
	}
}
