package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/grants"
	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/internal/testutil/sendtest"
)

// startDaemon runs an in-process daemon with -metrics on a free loopback
// port and stops it when the test ends; edit adjusts the configuration.
func startDaemon(t *testing.T, edit func(*Config)) *Daemon {
	t.Helper()
	cfg := testConfig(t)
	cfg.Metrics = "127.0.0.1:0"
	if edit != nil {
		edit(&cfg)
	}
	d, _ := launch(t, cfg)
	return d
}

// scrape returns every sample of /metrics as "name{labels}" → value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	body, code := httpGet(t, "http://"+addr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func httpGet(t *testing.T, url string) (string, int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), resp.StatusCode
}

// sendUDPFrom sends one datagram from a chosen loopback source address.
func sendUDPFrom(t *testing.T, from, to, msg string) {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
}

var labelValue = regexp.MustCompile(`="([^"]*)"`)

// TestMetricsCountKnownTraffic is the metrics acceptance test: known traffic
// in, exact counter values out, and no label holding an address or a user.
func TestMetricsCountKnownTraffic(t *testing.T) {
	d := startDaemon(t, func(c *Config) { c.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} })
	udp, maddr := d.UDPAddr().String(), d.MetricsAddr()

	sendtest.UDP(t, udp,
		"<22>Nov 21 10:00:00 mx1 dovecot[812]: pop3-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1, mpid=1, session=<s1>",
		"<22>Nov 21 10:00:01 mx1 dovecot[812]: imap-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.11, lip=192.0.2.1, mpid=2, session=<s2>",
		fmt.Sprintf(dovecotFailed, "192.0.2.66"),
		"<13>", // hostile: go-syslog's parser panics on it
		"<38>Nov 21 10:00:02 mx1 sshd[99]: Accepted password for root from 192.0.2.99 port 22 ssh2",
	)
	// Over 64 KiB: more than a UDP datagram can carry, so over TCP.
	sendtest.TCP(t, d.TCPAddr().String(), "<22>Nov 21 10:00:03 mx1 dovecot: "+strings.Repeat("x", 70000)+"\n")
	sendUDPFrom(t, "127.0.0.3", udp, fmt.Sprintf(dovecotLogin, "192.0.2.77")) // outside -allow

	var m map[string]float64
	defer func() {
		if t.Failed() {
			t.Logf("last scrape: %v", m)
		}
	}()
	testutil.Eventually(t, 3*time.Second, "all traffic counted and published", func() bool {
		m = scrape(t, maddr)
		return m[`relaygate_messages_received_total{transport="udp"}`] == 5 &&
			m[`relaygate_messages_dropped_total{reason="not_allowed"}`] == 1 &&
			m[`relaygate_messages_dropped_total{reason="too_long"}`] == 1 &&
			m["relaygate_grants"] == 2 && m["relaygate_publishes_total"] >= 2 &&
			m["relaygate_messages_unmatched_total"]+m[`relaygate_messages_dropped_total{reason="unwanted_program"}`] == 2
	})
	want := map[string]float64{
		`relaygate_messages_received_total{transport="udp"}`:     5,
		`relaygate_messages_received_total{transport="tcp"}`:     0,
		`relaygate_messages_received_total{transport="unix"}`:    0,
		`relaygate_messages_dropped_total{reason="not_allowed"}`: 1,
		`relaygate_messages_dropped_total{reason="too_long"}`:    1,
		`relaygate_messages_dropped_total{reason="malformed"}`:   1,
		`relaygate_events_total{daemon="dovecot",kind="login"}`:  2,
		"relaygate_messages_unmatched_total":                     1, // the failed login
		// sshd: no parser wants the program, so the receiver drops it unparsed.
		`relaygate_messages_dropped_total{reason="unwanted_program"}`: 1,
		"relaygate_logins_refused_total":                              0,
		"relaygate_logins_total":                                      2,
		"relaygate_grants":                                            2,
		"relaygate_grants_added_total":                                2,
		"relaygate_grants_expired_total":                              0,
		"relaygate_grants_evicted_total":                              0,
		"relaygate_publish_errors_total":                              0,
		"relaygate_state_save_errors_total":                           0,
		"relaygate_healthy":                                           1,
	}
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("%s missing", k)
		} else if got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	if m["relaygate_last_publish_timestamp_seconds"] < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last publish timestamp %v not recent", m["relaygate_last_publish_timestamp_seconds"])
	}
	// Every publish is timed, the one at startup included.
	if n := m["relaygate_publish_duration_seconds_count"]; n < 2 || n != m["relaygate_publishes_total"] {
		t.Errorf("publish duration count %v, publishes %v: want one observation per publish", n, m["relaygate_publishes_total"])
	}
	for k := range m {
		for _, v := range labelValue.FindAllStringSubmatch(k, -1) {
			if strings.Contains(v[1], "192.0.2.") || strings.Contains(v[1], "127.0.0.3") || slices.Contains([]string{"alice", "bob", "eve", "root"}, v[1]) {
				t.Errorf("series %s carries an address or a user", k)
			}
		}
	}
	if body, code := httpGet(t, "http://"+maddr+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
}

// TestHealthzReportsFailedPublish: a publish that fails turns /healthz to
// 503 with the reason; the next successful one turns it back.
func TestHealthzReportsFailedPublish(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "maps")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The state file stays where testConfig put it: only the map's
	// directory goes away.
	d := startDaemon(t, func(c *Config) { c.MapPath = filepath.Join(dir, "pbs.cdb") })
	maddr := d.MetricsAddr()
	if _, code := httpGet(t, "http://"+maddr+"/healthz"); code != 200 {
		t.Fatalf("/healthz %d at start", code)
	}
	// Without its directory no publish can succeed, even as root.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	sendtest.UDP(t, d.UDPAddr().String(), fmt.Sprintf(dovecotLogin, "192.0.2.10"))
	var body string
	testutil.Eventually(t, 3*time.Second, "/healthz 503", func() bool {
		var code int
		body, code = httpGet(t, "http://"+maddr+"/healthz")
		return code == http.StatusServiceUnavailable
	})
	if !strings.Contains(body, "map publish failing since") {
		t.Errorf("/healthz body %q gives no reason", body)
	}
	if m := scrape(t, maddr); m["relaygate_healthy"] != 0 || m["relaygate_publish_errors_total"] < 1 {
		t.Errorf("healthy %v, publish errors %v", m["relaygate_healthy"], m["relaygate_publish_errors_total"])
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The retry backs off up to 30 s: a loaded machine that took long for
	// the steps above may wait that long for the next one.
	testutil.Eventually(t, 40*time.Second, "/healthz back to 200 after the retry", func() bool {
		_, code := httpGet(t, "http://"+maddr+"/healthz")
		return code == http.StatusOK
	})
	if !sendtest.InMap(t, filepath.Join(dir, "pbs.cdb"), "192.0.2.10") {
		t.Error("grant not published after recovery")
	}
}

// TestGrantsServesLiveTable: /grants shows each grant with its user,
// daemon, host, time left and open session, straight from the running
// daemon.
func TestGrantsServesLiveTable(t *testing.T) {
	d := startDaemon(t, nil)
	sendtest.UDP(t, d.UDPAddr().String(),
		"<22>Nov 21 10:00:00 mx1 dovecot[812]: imap-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1, mpid=1, session=<s1>",
		"<22>Nov 21 10:00:00 mx2 dovecot: pop3-login: Login: user=<bob>, method=PLAIN, rip=2001:db8::5, lip=192.0.2.1")
	var reply GrantsReply
	testutil.Eventually(t, 3*time.Second, "two grants in /grants", func() bool {
		body, code := httpGet(t, "http://"+d.MetricsAddr()+"/grants")
		if code != 200 {
			t.Fatalf("/grants: %d %s", code, body)
		}
		if err := json.Unmarshal([]byte(body), &reply); err != nil {
			t.Fatal(err)
		}
		return len(reply.Grants) == 2
	})
	slices.SortFunc(reply.Grants, func(a, b GrantInfo) int { return strings.Compare(a.Addr, b.Addr) })
	a, b := reply.Grants[0], reply.Grants[1]
	if a.Addr != "192.0.2.10" || a.User != "alice" || a.Daemon != "dovecot" || a.Host != "mx1" || a.OpenSessions != 1 || a.SessionSince == nil {
		t.Errorf("first grant %+v", a)
	}
	if b.Addr != "2001:db8::5" || b.User != "bob" || b.Host != "mx2" || b.OpenSessions != 0 || b.LeftSeconds < 29*60 || b.LeftSeconds > 30*60 {
		t.Errorf("second grant %+v", b)
	}
	if reply.GraceSeconds != 30*60 {
		t.Errorf("grace_seconds %v, want 1800", reply.GraceSeconds)
	}
}

// TestGrantsLoopbackOnly: /grants names users, so a remote client (here a
// request that claims a non-loopback peer) is refused.
func TestGrantsLoopbackOnly(t *testing.T) {
	m := &monitor{reads: make(chan func(*grants.Table)), stopped: make(chan struct{})}
	req := httptest.NewRequest(http.MethodGet, "/grants", nil)
	req.RemoteAddr = "192.0.2.1:4711"
	rec := httptest.NewRecorder()
	m.grants(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("remote /grants: %d, want 403", rec.Code)
	}
	// A loopback client of a daemon that is shutting down gets 503, not a hang.
	close(m.stopped)
	req.RemoteAddr = "127.0.0.1:4711"
	rec = httptest.NewRecorder()
	m.grants(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/grants while stopping: %d, want 503", rec.Code)
	}
}

// Connections refused at accept are counted by reason, in /metrics and in
// the shutdown line's counters.
func TestConnRefusalsExported(t *testing.T) {
	d := startDaemon(t, func(c *Config) { c.MaxConns, c.MaxConnsPerHost = 4, 1 })
	addr := d.TCPAddr().String()
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	testutil.Eventually(t, 2*time.Second, "first connection open", func() bool { return d.logFields()["receiver_connections_open"] == 1.0 })
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	testutil.Eventually(t, 2*time.Second, "per-host refusal", func() bool {
		m := scrape(t, d.MetricsAddr())
		return m[`relaygate_connections_refused_total{reason="per_host"}`] == 1
	})
	m := scrape(t, d.MetricsAddr())
	for _, reason := range []string{"max_conns", "not_allowed"} {
		if v, ok := m[`relaygate_connections_refused_total{reason="`+reason+`"}`]; !ok || v != 0 {
			t.Errorf("%s: %v (present %v), want 0", reason, v, ok)
		}
	}
	c := d.logFields()
	if c["connections_refused_per_host"] != 1.0 || c["connections_refused_max_conns"] != 0.0 || c["connections_refused_not_allowed"] != 0.0 {
		t.Errorf("counters %v", c)
	}
}

// TestReloadOutcomeExported: relaygate_last_reload_success says whether the
// latest reload was applied, relaygate_reloads_total counts them by result,
// and the shutdown line has the same counts.
func TestReloadOutcomeExported(t *testing.T) {
	excl := filepath.Join(t.TempDir(), "exclude")
	testutil.WriteFile(t, excl, "192.0.2.0/24\n", 0o644)
	d := startDaemon(t, func(c *Config) { c.ExcludeFile = excl })
	reloads := func() (last, ok, failed float64) {
		m := scrape(t, d.MetricsAddr())
		return m["relaygate_last_reload_success"], m[`relaygate_reloads_total{result="ok"}`], m[`relaygate_reloads_total{result="error"}`]
	}
	check := func(when string, wantLast, wantOK, wantFailed float64) {
		t.Helper()
		if last, ok, failed := reloads(); last != wantLast || ok != wantOK || failed != wantFailed {
			t.Errorf("%s: last_reload_success %v, reloads ok %v error %v; want %v, %v, %v", when, last, ok, failed, wantLast, wantOK, wantFailed)
		}
	}
	check("at start", 1, 0, 0)
	ctx := context.Background()
	if err := d.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	check("after a good reload", 1, 1, 0)
	testutil.WriteFile(t, excl, "not-a-network\n", 0o644)
	if err := d.Reload(ctx); err == nil || !strings.Contains(err.Error(), excl+":1") {
		t.Fatalf("reload of a bad file: %v, want an error naming %s:1", err, excl)
	}
	check("after a rejected reload", 0, 1, 1)
	f := d.logFields()
	if f["last_reload_success"] != 0.0 || f["reloads_ok"] != 1.0 || f["reloads_error"] != 1.0 {
		t.Errorf("log fields %v", f)
	}
	testutil.WriteFile(t, excl, "198.51.100.0/24\n", 0o644)
	if err := d.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	check("after the file was fixed", 1, 2, 1)
}

// TestLogLineHasEverySeries: the shutdown line and /metrics come from the
// same descriptions, so every relaygate_ series of a scrape (but
// build_info, which is not a count, and the publish histogram) has its key
// in the line.
func TestLogLineHasEverySeries(t *testing.T) {
	d := startDaemon(t, nil)
	sendtest.UDP(t, d.UDPAddr().String(), fmt.Sprintf(dovecotLogin, "192.0.2.10"))
	testutil.Eventually(t, 3*time.Second, "the login counted", func() bool { return d.pipe.Counts().Logins == 1 })
	fields := d.logFields()
	for series := range scrape(t, d.MetricsAddr()) {
		name, labels, _ := strings.Cut(series, "{")
		if !strings.HasPrefix(name, "relaygate_") || name == "relaygate_build_info" || strings.HasPrefix(name, "relaygate_publish_duration_seconds") {
			continue
		}
		key := strings.TrimSuffix(strings.TrimPrefix(name, "relaygate_"), "_total")
		for _, v := range labelValue.FindAllStringSubmatch(labels, -1) {
			key += "_" + v[1]
		}
		if _, ok := fields[key]; !ok {
			t.Errorf("%s has no %q in the shutdown line", series, key)
		}
	}
	if fields["events_dovecot_login"] != 1.0 || fields["logins"] != 1.0 {
		t.Errorf("log fields %v", fields)
	}
}
