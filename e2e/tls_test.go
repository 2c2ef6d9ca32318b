//go:build e2e

package e2e

// Syslog over TLS (RFC 5425) with client certificates, from the real
// senders: rsyslog's gtls driver (GnuTLS, package rsyslog-gnutls) and
// syslog-ng's tls() (OpenSSL, from the syslog-ng layer). relaygate runs
// with -tls, -tls-client-ca and neither UDP nor TCP, so a grant can only
// have come over TLS. The certificates are made by the test with
// crypto/x509.

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

const (
	syslogTLS   = "127.0.0.1:6514"
	metricsAddr = "127.0.0.1:9725"
	// tlsServerName is relaygate's certificate (DNS SAN, CN; plus the IP
	// SAN 127.0.0.1): what rsyslog's x509/name checks against
	// StreamDriverPermittedPeers, and the host syslog-ng connects to.
	tlsServerName = "relaygate.pbs.test"
	// tlsClientName is the log host's client certificate (CN, DNS SAN).
	tlsClientName = "mail.pbs.test"
)

// ---------------------------------------------------------------------------
// certificates

const (
	keyECDSA = testutil.ECDSA
	keyRSA   = testutil.RSA
)

// newTestPKI makes the PEM files of one test: a CA, relaygate's server
// certificate and the log host's client certificate signed by it, and a
// client certificate with the same names signed by another CA.
func newTestPKI(t *testing.T, dir string, kind testutil.KeyKind) *testutil.PKI {
	t.Helper()
	return testutil.NewPKI(t, dir, testutil.PKIOptions{
		Kind:       kind,
		ServerName: tlsServerName,
		ServerIPs:  []net.IP{net.ParseIP("127.0.0.1")},
		ClientName: tlsClientName,
	})
}

// ---------------------------------------------------------------------------
// relaygate with only a TLS listener

// tlsOpts returns stackOpts for relaygate listening on syslogTLS only, with
// -tls-client-ca, the metrics endpoint and debug logging (which logs each
// TLS connection with its protocol version and verified client name).
func tlsOpts(p *testutil.PKI) stackOpts {
	return stackOpts{udp: "-", tcp: "", extraArgs: []string{
		"-tls", syslogTLS, "-tls-cert", p.ServerCert, "-tls-key", p.ServerKey, "-tls-client-ca", p.CAFile,
		"-metrics", metricsAddr, "-log-level", "debug",
	}}
}

// needRsyslogGTLS checks for rsyslog's GnuTLS network stream driver.
func needRsyslogGTLS(t *testing.T) {
	t.Helper()
	m, _ := filepath.Glob("/usr/lib/*/rsyslog/lmnsd_gtls.so")
	if len(m) == 0 {
		m, _ = filepath.Glob("/usr/lib/rsyslog/lmnsd_gtls.so")
	}
	need(t, len(m) > 0, "rsyslog's gtls driver lmnsd_gtls.so not found (apt-get install rsyslog-gnutls)")
}

// rsyslogTLSForward is an rsyslog config fragment that forwards everything
// to relaygate over TLS with the gtls driver, checking relaygate's name
// (x509/name). cert and key are the client certificate ("" for none).
// The files go into global() (DefaultNetstreamDriver…File), or with
// perAction into the action (StreamDriver.…File, as in
// examples/rsyslog-relaygate-tls.conf).
func rsyslogTLSForward(ca, cert, key string, perAction bool, actionParams string) string {
	var g, files string
	if perAction {
		files = fmt.Sprintf(`StreamDriver.CAFile="%s"`, ca)
		if cert != "" {
			files += fmt.Sprintf(` StreamDriver.CertFile="%s" StreamDriver.KeyFile="%s"`, cert, key)
		}
	} else {
		g = fmt.Sprintf(`global(DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="%s"`, ca)
		if cert != "" {
			g += fmt.Sprintf(` DefaultNetstreamDriverCertFile="%s" DefaultNetstreamDriverKeyFile="%s"`, cert, key)
		}
		g += ")\n"
	}
	host, port, _ := net.SplitHostPort(syslogTLS)
	return g + fmt.Sprintf(`*.* action(type="omfwd" protocol="tcp" target="%s" port="%s"
  StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
  StreamDriverPermittedPeers="%s" StreamDriver.CheckExtendedKeyPurpose="on"
  %s action.resumeInterval="1" %s)`, host, port, tlsServerName, files, actionParams)
}

// metrics scrapes relaygate's /metrics; series are keyed as printed, e.g.
// relaygate_messages_received_total{transport="tls"}.
func metrics(t *testing.T) map[string]float64 {
	t.Helper()
	m, err := scrapeMetrics()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func scrapeMetrics() (map[string]float64, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			out[l[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading /metrics: %w", err)
	}
	return out, nil
}

const (
	mTLSRefused  = "relaygate_receiver_tls_refused_total"
	mTLSReceived = `relaygate_messages_received_total{transport="tls"}`
	mGranted     = "relaygate_grants_added_total"
)

// waitMetric waits until the series is at least min and returns it.
func waitMetric(t *testing.T, name string, min float64, timeout time.Duration) float64 {
	t.Helper()
	timeout = hangGuard(timeout)
	var (
		v   float64
		err error
	)
	if _, ok := testutil.Poll(timeout, 100*time.Millisecond, func() bool {
		var m map[string]float64
		if m, err = scrapeMetrics(); err != nil {
			return false
		}
		v = m[name]
		return v >= min
	}); !ok {
		t.Fatalf("%s = %v, not >= %v within %v (last error: %v)", name, v, min, timeout, err)
	}
	return v
}

// logRecords returns relaygate's JSON log records whose message is msg.
func logRecords(t *testing.T, path, msg string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(string(b), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) == nil && rec["message"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// expectTLSConnection checks relaygate's debug record of an accepted TLS
// connection: the verified client certificate's name and, when version is
// set, the protocol version.
func expectTLSConnection(t *testing.T, s *stack, version string) {
	t.Helper()
	recs := logRecords(t, s.rgLog, "TLS connection")
	if len(recs) == 0 {
		t.Fatalf("relaygate logged no accepted TLS connection")
	}
	for _, r := range recs {
		if r["tls_peer"] != tlsClientName || (version != "" && r["version"] != version) {
			t.Fatalf("TLS connection %v, want tls_peer %q version %q", r, tlsClientName, version)
		}
	}
	t.Logf("relaygate: %d TLS connection(s), tls_peer=%v version=%v", len(recs), recs[0]["tls_peer"], recs[0]["version"])
}

// stopRelaygate stops relaygate with SIGTERM (exit status 0 expected) and
// returns the counters of its "stopped" record.
func stopRelaygate(t *testing.T, s *stack) map[string]any {
	t.Helper()
	if err := s.rg.stop(t, syscall.SIGTERM, 15*time.Second); err != nil {
		t.Fatalf("relaygate SIGTERM: %v (want exit status 0)", err)
	}
	recs := logRecords(t, s.rgLog, "stopped")
	if len(recs) != 1 {
		t.Fatalf("relaygate logged %d \"stopped\" records, want 1", len(recs))
	}
	return recs[0]
}

// refusalWait is how long goSyslogTLS waits for a refusal it expects.
const refusalWait = 15 * time.Second

// goSyslogTLS sends one fabricated Dovecot login line (RFC 5424,
// octet-counted) for addr to relaygate with Go's TLS client, presenting
// cert (nil: none) whatever CAs relaygate names, as rsyslog and syslog-ng
// do. It returns nil if relaygate kept the connection open for wait after
// the line; a refused client sees the handshake fail or, with TLS 1.3,
// its first read fail with relaygate's alert. A caller expecting a
// refusal waits long (a stalled relaygate sends its alert late); one
// expecting acceptance need not.
func goSyslogTLS(t *testing.T, p *testutil.PKI, cert *tls.Certificate, addr string, wait time.Duration) error {
	t.Helper()
	conf := p.ClientConfig(cert)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", syslogTLS, conf)
	if err != nil {
		return err
	}
	defer c.Close()
	line := fmt.Sprintf("<22>1 %s mail dovecot 4711 - - pop3-login: Login: user=<alice>, method=PLAIN, rip=%s, lip=127.0.0.1, mpid=4712, session=<e2eGoTLS>",
		time.Now().Format("2006-01-02T15:04:05.000000Z07:00"), addr) // RFC 5424: at most 6 fraction digits
	if _, err := fmt.Fprintf(c, "%d %s", len(line), line); err != nil {
		return err
	}
	// A refused TLS 1.3 client learns it here: relaygate sends an alert
	// and closes. An accepted one reads nothing until the deadline.
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err = c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return nil
	}
	switch {
	case err == nil:
		return fmt.Errorf("relaygate sent data on a syslog connection")
	case err == io.EOF:
		return fmt.Errorf("relaygate closed the connection")
	}
	return err
}

// ---------------------------------------------------------------------------
// rsyslog gtls

// Dovecot → rsyslog omfwd with the gtls driver, a client certificate and
// x509/name → relaygate -tls -tls-client-ca → Postfix.
func TestRsyslogTLS(t *testing.T) {
	cases := []struct {
		name      string
		key       testutil.KeyKind
		perAction bool   // certificate files in the action, not in global()
		params    string // more omfwd parameters
		version   string // what relaygate must log
	}{
		{"ecdsa-octet-counted-rfc5424", keyECDSA, false,
			`template="RSYSLOG_SyslogProtocol23Format" TCP_Framing="octet-counted"`, "TLS 1.3"},
		{"rsa-tls12-newline-rfc3164-per-action", keyRSA, true,
			`gnutlsPriorityString="NORMAL:-VERS-ALL:+VERS-TLS1.2"`, "TLS 1.2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			needRsyslogGTLS(t)
			pki := newTestPKI(t, t.TempDir(), c.key)
			o := tlsOpts(pki)
			o.forward = rsyslogTLSForward(pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile, c.perAction, c.params)
			s := newStack(t, o)
			expectRCPT(t, "127.0.0.2", 554)
			checkFailed := failedLoginStaysDenied(t, s, pop3Login, "alice", "127.0.0.3", "127.0.0.4",
				"pop3-login: Disconnected: Aborted login by logging out (auth failed")
			l := mustLogin(t, pop3Login, "127.0.0.2", "alice", "alicepw", true)
			grantedWithin(t, "127.0.0.2", l)
			expectInMap(t, s.mapBase, "127.0.0.2", true)
			l = mustLogin(t, imapLogin, "127.0.0.5", "bob", "bobpw", true)
			grantedWithin(t, "127.0.0.5", l)
			checkFailed()

			expectTLSConnection(t, s, c.version)
			m := metrics(t)
			if m[mTLSRefused] != 0 || m[mTLSReceived] == 0 {
				t.Fatalf("tls_refused %v, TLS messages %v; want 0 and > 0", m[mTLSRefused], m[mTLSReceived])
			}
			t.Logf("relaygate: %v messages over TLS, %v grants, 0 refused", m[mTLSReceived], m[mGranted])
		})
	}
}

// rsyslog with a client certificate of another CA, or with none, is refused
// at the handshake: its Dovecot login is never granted. A Go TLS client
// with the trusted certificate then proves the listener itself works.
func TestRsyslogTLSRefused(t *testing.T) {
	cases := []struct {
		name    string
		rogue   bool   // present the other CA's certificate; else none
		refusal string // in relaygate's tls_refused warning
	}{
		{"client-cert-of-another-CA", true, "unknown authority"},
		{"no-client-cert", false, "didn't provide a certificate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			needRsyslogGTLS(t)
			pki := newTestPKI(t, t.TempDir(), keyECDSA)
			o := tlsOpts(pki)
			if c.rogue {
				o.forward = rsyslogTLSForward(pki.CAFile, pki.RogueCertFile, pki.RogueKeyFile, false, "")
			} else {
				o.forward = rsyslogTLSForward(pki.CAFile, "", "", false, "")
			}
			s := newStack(t, o)
			expectTLSRefusedLogin(t, s, c.refusal)

			// The same listener: Go clients with no / the other CA's
			// certificate are refused, with the trusted one granted.
			for _, bad := range []*tls.Certificate{nil, &pki.Rogue} {
				if err := goSyslogTLS(t, pki, bad, "127.0.0.7", refusalWait); err == nil {
					t.Fatalf("Go TLS client (certificate %v) was not refused", bad != nil)
				}
			}
			if err := goSyslogTLS(t, pki, &pki.Client, "127.0.0.8", 3*time.Second); err != nil {
				t.Fatalf("Go TLS client with the trusted certificate: %v", err)
			}
			waitRCPT(t, "127.0.0.8", 250, 10*time.Second)
			expectRCPT(t, "127.0.0.7", 554)
			expectInMap(t, s.mapBase, "127.0.0.7", false)
			expectRCPT(t, "127.0.0.2", 554)

			st := stopRelaygate(t, s)
			t.Logf("relaygate stopped: received_tls=%v tls_refused=%v logins=%v granted=%v",
				st["messages_received_tls"], st["receiver_tls_refused"], st["logins"], st["grants_added"])
			// Only the Go client's line came in, and only its grant.
			if st["messages_received_tls"] != 1.0 || st["logins"] != 1.0 || st["grants_added"] != 1.0 || st["receiver_tls_refused"].(float64) < 3 {
				t.Fatalf("relaygate counters %v: want received_tls=1 logins=1 granted=1 tls_refused>=3", st)
			}
		})
	}
}

// expectTLSRefusedLogin logs in from 127.0.0.2 (a line the syslog daemon
// receives and sends to relaygate over a refused TLS connection) and checks
// that the refusals are counted and logged and that nothing is granted.
func expectTLSRefusedLogin(t *testing.T, s *stack, refusal string) {
	t.Helper()
	expectRCPT(t, "127.0.0.2", 554)
	// The syslog daemon's first forwarding attempt (the readiness probe)
	// has been refused already, or soon is.
	waitMetric(t, mTLSRefused, 1, 30*time.Second)
	mustLogin(t, pop3Login, "127.0.0.2", "alice", "alicepw", true)
	waitLog(t, s.allLog, "rip=127.0.0.2, lip=127.0.0.1", 10*time.Second)
	// The sender keeps trying (resume interval 1 s) and keeps being
	// refused after the login line: nudge it with probes until a new
	// refusal is counted.
	before := metrics(t)[mTLSRefused]
	if _, ok := testutil.Poll(30*time.Second, 500*time.Millisecond, func() bool {
		if c, err := net.Dial("unixgram", "/dev/log"); err == nil {
			fmt.Fprintf(c, "<22>e2e-probe: after the login %d", time.Now().UnixNano())
			c.Close()
		}
		m, err := scrapeMetrics()
		return err == nil && m[mTLSRefused] > before
	}); !ok {
		t.Fatalf("no TLS refusal counted within 30 s after the login (tls_refused %v)", before)
	}
	// Nothing came in over TLS, so nothing was granted.
	m := metrics(t)
	if m[mTLSReceived] != 0 || m[mGranted] != 0 {
		t.Fatalf("TLS messages %v, grants %v: want 0 and 0", m[mTLSReceived], m[mGranted])
	}
	expectRCPT(t, "127.0.0.2", 554)
	expectInMap(t, s.mapBase, "127.0.0.2", false)
	// relaygate says why (the warning is rate-limited: the first one).
	waitLog(t, s.rgLog, `"reason":"tls_refused"`, 5*time.Second)
	waitLog(t, s.rgLog, refusal, 5*time.Second)
	if len(logRecords(t, s.rgLog, "TLS connection")) != 0 {
		t.Fatalf("relaygate accepted a TLS connection from the refused sender")
	}
	t.Logf("relaygate refused %v TLS connections: %s", m[mTLSRefused], refusal)
}

// ---------------------------------------------------------------------------
// syslog-ng tls()

// syslogNGTLS is a stackOpts.syslogd hook: syslog-ng from its layer, with
// the PEM files copied into its root and relaygate's name in its /etc/hosts,
// sending RFC 5424 over TLS (syslog() driver: octet-counted, RFC 5425).
func syslogNGTLS(p *testutil.PKI, cert, key string) func(s *stack) {
	dest := `syslog("` + tlsServerName + `" port(6514) transport("tls") time-reopen(1)
    tls(ca-file("/etc/syslog-ng/e2e-tls/ca.pem") peer-verify(required-trusted)`
	if cert != "" {
		dest += ` cert-file("/etc/syslog-ng/e2e-tls/client.pem") key-file("/etc/syslog-ng/e2e-tls/client.key")`
	}
	dest += `));`
	return startSyslogNGWith(dest, func(s *stack, root string) {
		t := s.t
		dir := filepath.Join(root, "etc/syslog-ng/e2e-tls")
		mkdirs(t, 0o755, dir)
		cp := func(src, name string, mode os.FileMode) {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			testutil.WriteFile(t, filepath.Join(dir, name), string(b), mode)
		}
		cp(p.CAFile, "ca.pem", 0o644)
		if cert != "" {
			cp(cert, "client.pem", 0o644)
			cp(key, "client.key", 0o600)
		}
		// syslog-ng checks the name it connected to against the
		// server certificate.
		testutil.WriteFile(t, filepath.Join(root, "etc/hosts"),
			"127.0.0.1 localhost\n127.0.0.1 "+tlsServerName+"\n", 0o644)
	})
}

// Dovecot → syslog-ng tls() with a client certificate → relaygate -tls
// -tls-client-ca → Postfix; and syslog-ng with the other CA's certificate
// refused.
func TestSyslogNGTLS(t *testing.T) {
	t.Run("client-cert", func(t *testing.T) {
		needLayer(t, "syslog-ng")
		pki := newTestPKI(t, t.TempDir(), keyECDSA)
		o := tlsOpts(pki)
		o.syslogd = syslogNGTLS(pki, pki.ClientCertFile, pki.ClientKeyFile)
		s := newStack(t, o)
		expectRCPT(t, "127.0.0.2", 554)
		checkFailed := failedLoginStaysDenied(t, s, pop3Login, "alice", "127.0.0.3", "127.0.0.4",
			"pop3-login: Disconnected: Aborted login by logging out (auth failed")
		l := mustLogin(t, pop3Login, "127.0.0.2", "alice", "alicepw", true)
		grantedWithin(t, "127.0.0.2", l)
		expectInMap(t, s.mapBase, "127.0.0.2", true)
		l = mustLogin(t, imapLogin, "127.0.0.5", "bob", "bobpw", true)
		grantedWithin(t, "127.0.0.5", l)
		checkFailed()
		expectTLSConnection(t, s, "")
		if m := metrics(t); m[mTLSRefused] != 0 {
			t.Fatalf("tls_refused %v, want 0", m[mTLSRefused])
		}
	})
	t.Run("client-cert-of-another-CA", func(t *testing.T) {
		needLayer(t, "syslog-ng")
		pki := newTestPKI(t, t.TempDir(), keyECDSA)
		o := tlsOpts(pki)
		o.syslogd = syslogNGTLS(pki, pki.RogueCertFile, pki.RogueKeyFile)
		s := newStack(t, o)
		expectTLSRefusedLogin(t, s, "unknown authority")
		st := stopRelaygate(t, s)
		if st["messages_received_tls"] != 0.0 || st["grants_added"] != 0.0 {
			t.Fatalf("relaygate counters %v: want received_tls=0 granted=0", st)
		}
	})
}

// ---------------------------------------------------------------------------
// known issue: the first line after relaygate closes an idle TLS connection

// envKnownIssues enables tests that reproduce known, unfixed problems; they
// fail until the problem is fixed.
const envKnownIssues = "RELAYGATE_E2E_KNOWN_ISSUES"

// After relaygate closes an idle TLS connection (-idle-timeout, default
// 10m; 3s here), the sender does not notice the close until a write fails,
// so the first line it writes afterwards, here the login, is lost: the
// write itself succeeds, and only the next one fails and is retried on a
// new connection. It happens to rsyslog's gtls driver over TLS 1.3 (its
// check for a closed connection before sending peeks at the socket, and
// finds the unread TLS 1.3 session tickets relaygate sent; with TLS 1.2,
// or with session tickets disabled, the check works) and to syslog-ng's
// tls() with any version. Over plain TCP rsyslog notices the close and
// loses nothing. A later login proves the sender is connected again, and
// the test fails if the first one was never granted. Only with
// RELAYGATE_E2E_KNOWN_ISSUES=1; see docs/E2E.md.
func TestTLSIdleCloseKnownIssue(t *testing.T) {
	if os.Getenv(envKnownIssues) != "1" {
		t.Skipf("reproduces a known issue (the login after an idle TLS close is lost); set %s=1 to run it", envKnownIssues)
	}
	cases := []struct {
		name   string
		layer  bool // syslog-ng
		params string
	}{
		{"rsyslog-tls13", false, `template="RSYSLOG_SyslogProtocol23Format" TCP_Framing="octet-counted"`},
		{"rsyslog-tls12", false, `gnutlsPriorityString="NORMAL:-VERS-ALL:+VERS-TLS1.2"`}, // passes
		{"syslog-ng", true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pki := newTestPKI(t, t.TempDir(), keyECDSA)
			o := tlsOpts(pki)
			o.extraArgs = append(o.extraArgs, "-idle-timeout", "3s")
			if c.layer {
				needLayer(t, "syslog-ng")
				o.syslogd = syslogNGTLS(pki, pki.ClientCertFile, pki.ClientKeyFile)
			} else {
				needRsyslogGTLS(t)
				o.forward = rsyslogTLSForward(pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile, false, c.params)
			}
			s := newStack(t, o)
			l := mustLogin(t, pop3Login, "127.0.0.2", "alice", "alicepw", true)
			grantedWithin(t, "127.0.0.2", l)
			waitLog(t, s.rgLog, "closed TLS connection idle for 3s", 20*time.Second)
			time.Sleep(time.Second)
			mustLogin(t, pop3Login, "127.0.0.5", "alice", "alicepw", true)
			waitLog(t, s.allLog, "rip=127.0.0.5, lip=127.0.0.1", 10*time.Second)
			// Barrier: a later login is granted, so the sender is connected
			// again and everything after the lost line arrived.
			mustLogin(t, pop3Login, "127.0.0.6", "alice", "alicepw", true)
			waitRCPT(t, "127.0.0.6", 250, 15*time.Second)
			if _, found := postmapQuery(t, s.mapBase, "127.0.0.5"); !found {
				t.Fatalf("the login from 127.0.0.5, the first line after relaygate closed the idle TLS connection, was lost: "+
					"a later login (127.0.0.6) was granted, 127.0.0.5 never (tls_refused %v)", metrics(t)[mTLSRefused])
			}
			expectRCPT(t, "127.0.0.5", 250)
		})
	}
}
