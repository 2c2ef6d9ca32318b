package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/cdbwriter"
)

// startDaemon runs an in-process relaygate with -metrics on a free loopback
// port and stops it when the test ends.
func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	cfg, err := parseServeFlags(append([]string{
		"-udp", "127.0.0.1:0", "-tcp", "127.0.0.1:0", "-metrics", "127.0.0.1:0",
		"-mynetworks", "none", "-flush", "50ms",
	}, args...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d, cancel, done := launchDaemon(t, cfg)
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Errorf("run did not return within 3 s of cancel")
		}
	})
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
	dir := t.TempDir()
	d := startDaemon(t, "-map", filepath.Join(dir, "pbs.cdb"), "-allow", "127.0.0.1/32")
	udp, maddr := d.recv.UDPAddr().String(), d.mon.addr()

	sendUDP(t, udp,
		"<22>Nov 21 10:00:00 mx1 dovecot[812]: pop3-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1, mpid=1, session=<s1>",
		"<22>Nov 21 10:00:01 mx1 dovecot[812]: imap-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.11, lip=192.0.2.1, mpid=2, session=<s2>",
		fmt.Sprintf(dovecotFailed, "192.0.2.66"),
		"<13>", // hostile: go-syslog's parser panics on it
		"<38>Nov 21 10:00:02 mx1 sshd[99]: Accepted password for root from 192.0.2.99 port 22 ssh2",
	)
	// Over 64 KiB: more than a UDP datagram can carry, so over TCP.
	sendTCP(t, d.recv.TCPAddr().String(), "<22>Nov 21 10:00:03 mx1 dovecot: "+strings.Repeat("x", 70000)+"\n")
	sendUDPFrom(t, "127.0.0.3", udp, fmt.Sprintf(dovecotLogin, "192.0.2.77")) // outside -allow

	var m map[string]float64
	defer func() {
		if t.Failed() {
			t.Logf("last scrape: %v", m)
		}
	}()
	waitFor(t, 3*time.Second, "all traffic counted and published", func() bool {
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
		`relaygate_messages_dropped_total{reason="queue_full"}`:  0,
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
	d := startDaemon(t, "-map", filepath.Join(dir, "pbs.cdb"))
	maddr := d.mon.addr()
	if _, code := httpGet(t, "http://"+maddr+"/healthz"); code != 200 {
		t.Fatalf("/healthz %d at start", code)
	}
	// Without its directory no publish can succeed, even as root.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	sendUDP(t, d.recv.UDPAddr().String(), fmt.Sprintf(dovecotLogin, "192.0.2.10"))
	var body string
	waitFor(t, 3*time.Second, "/healthz 503", func() bool {
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
	waitFor(t, 5*time.Second, "/healthz back to 200 after the retry", func() bool {
		_, code := httpGet(t, "http://"+maddr+"/healthz")
		return code == http.StatusOK
	})
	if !postmapQuery(t, filepath.Join(dir, "pbs.cdb"), "192.0.2.10") {
		t.Error("grant not published after recovery")
	}
}

// TestStatusListsLiveGrants: relaygate status shows each grant with its
// user, daemon, host, time left and open session, straight from the
// running daemon.
func TestStatusListsLiveGrants(t *testing.T) {
	d := startDaemon(t, "-map", filepath.Join(t.TempDir(), "pbs.cdb"))
	maddr := d.mon.addr()
	sendUDP(t, d.recv.UDPAddr().String(),
		"<22>Nov 21 10:00:00 mx1 dovecot[812]: imap-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1, mpid=1, session=<s1>",
		"<22>Nov 21 10:00:00 mx2 dovecot: pop3-login: Login: user=<bob>, method=PLAIN, rip=2001:db8::5, lip=192.0.2.1")
	var reply grantsReply
	waitFor(t, 3*time.Second, "two grants in /grants", func() bool {
		body, code := httpGet(t, "http://"+maddr+"/grants")
		if code != 200 {
			t.Fatalf("/grants: %d %s", code, body)
		}
		if err := json.Unmarshal([]byte(body), &reply); err != nil {
			t.Fatal(err)
		}
		return len(reply.Grants) == 2
	})
	a, b := reply.Grants[0], reply.Grants[1]
	if a.Addr != "192.0.2.10" || a.User != "alice" || a.Daemon != "dovecot" || a.Host != "mx1" || a.OpenSessions != 1 || a.SessionSince == nil {
		t.Errorf("first grant %+v", a)
	}
	if b.Addr != "2001:db8::5" || b.User != "bob" || b.Host != "mx2" || b.OpenSessions != 0 || b.LeftSeconds < 29*60 || b.LeftSeconds > 30*60 {
		t.Errorf("second grant %+v", b)
	}

	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"status", "-metrics", maddr}, nil, &out, &errOut); code != 0 {
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

// TestGrantsLoopbackOnly: /grants names users, so a remote client (here a
// request that claims a non-loopback peer) is refused.
func TestGrantsLoopbackOnly(t *testing.T) {
	m := &monitor{reads: make(chan func(*cdbwriter.Table)), stopped: make(chan struct{})}
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

func TestMetricsFlagErrors(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"serve", "-metrics", "9725"}, nil, io.Discard, &stderr); code == 0 || !strings.Contains(stderr.String(), "-metrics") {
		t.Errorf("bad -metrics: exit %d, %s", code, stderr.String())
	}
}

func TestParseProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:158A":                         "127.0.0.1:5514",
		"00000000:0035":                         "0.0.0.0:53",
		"00000000000000000000000001000000:158A": "[::1]:5514",
		"B80D0120000000000000000005000000:0035": "[2001:db8::5]:53",
	} {
		got, ok := parseProcAddr(in)
		if !ok || got.String() != want {
			t.Errorf("parseProcAddr(%s) = %v %v, want %s", in, got, ok, want)
		}
	}
}
