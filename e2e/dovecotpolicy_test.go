//go:build e2e

package e2e

// Issue 13, "Dovecot's own report": real Dovecot with
// auth_policy_server_url pointing at relaygate -dovecot-policy (the
// shipped examples/dovecot-auth-policy.conf, read from the file: report
// after auth on, the checks off, the hash nonce set, the API header secret
// read from the file relaygate reads too) → real Postfix. No log line
// reaches relaygate (rsyslog forwards nothing), so every grant came from
// Dovecot's report. An IMAP and a POP3 login grant; a failed login, a
// submission AUTH (Dovecot's own submission service, a real report with
// protocol "submission") and requests without or with a wrong secret do
// not.

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

const (
	policyExample  = "../examples/dovecot-auth-policy.conf"
	policyAddr     = "127.0.0.1:9726" // the example's auth_policy_server_url
	policySecret   = "/etc/relaygate/dovecot-policy.secret"
	submissionAddr = "127.0.0.1:587"
)

func policyRequests(result string) string {
	return fmt.Sprintf(`relaygate_dovecot_policy_requests_total{result=%q}`, result)
}

func TestDovecotAuthPolicy(t *testing.T) {
	needHostDaemons(t)
	needFile(t, "/usr/lib/dovecot/submission-login", "apt-get install dovecot-submissiond")
	needFile(t, policyExample, "the shipped example")

	// The secret, shared by relaygate and Dovecot as the example says:
	// Dovecot's config process reads it through "<FILE", so no newline.
	token := make([]byte, 24)
	if _, err := rand.Read(token); err != nil {
		t.Fatal(err)
	}
	secret := hex.EncodeToString(token)
	secretFile := filepath.Join(t.TempDir(), "dovecot-policy.secret")
	testutil.WriteFile(t, secretFile, "X-API-Key:"+secret, 0o640)

	s := newStack(t, stackOpts{
		forward: "# nothing is forwarded: relaygate hears no log line in this test",
		extraArgs: []string{"-dovecot-policy", policyAddr, "-dovecot-policy-secret-file", secretFile,
			"-metrics", metricsAddr},
		mailServer: func(s *stack) { startDovecotWithPolicy(s, secretFile) },
	})
	waitLog(t, s.rgLog, "Dovecot auth policy endpoint listening", 5*time.Second)
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.7"} {
		expectRCPT(t, ip, 554)
	}

	t.Run("IMAP login grants", func(t *testing.T) {
		l := mustLogin(t, imapLogin, "127.0.0.2", "bob", "bobpw", true)
		grantedWithin(t, "127.0.0.2", l)
		expectInMap(t, s.mapBase, "127.0.0.2", true)
	})
	t.Run("POP3 login grants", func(t *testing.T) {
		l := mustLogin(t, pop3Login, "127.0.0.4", "alice", "alicepw", true)
		grantedWithin(t, "127.0.0.4", l)
		expectInMap(t, s.mapBase, "127.0.0.4", true)
	})
	t.Run("failed login does not", func(t *testing.T) {
		mustLogin(t, imapLogin, "127.0.0.3", "bob", "wrong-password", false)
		waitMetric(t, policyRequests("auth_failed"), 1, 10*time.Second)
		expectInMap(t, s.mapBase, "127.0.0.3", false)
		expectRCPT(t, "127.0.0.3", 554)
	})
	t.Run("submission AUTH does not", func(t *testing.T) {
		if reply := submissionAuth(t, "127.0.0.5", "alice", "alicepw"); !strings.HasPrefix(reply, "235") {
			t.Fatalf("submission AUTH: %q, want 235", reply)
		}
		waitMetric(t, policyRequests("other_protocol"), 1, 10*time.Second)
		expectInMap(t, s.mapBase, "127.0.0.5", false)
		expectRCPT(t, "127.0.0.5", 554)
	})
	t.Run("request without the secret does not", func(t *testing.T) {
		body := `{"login":"mallory","remote":"127.0.0.7","protocol":"imap","session_id":"x","success":true,"policy_reject":false,"tls":false}`
		for _, key := range []string{"", "wrong-" + secret, secret + "x"} {
			if code := postReport(t, key, body); code != http.StatusForbidden {
				t.Errorf("report with X-API-Key %q: status %d, want 403", key, code)
			}
		}
		waitMetric(t, policyRequests("bad_secret"), 3, 5*time.Second)
		// The same request with the secret would grant: the refusal was
		// the secret's. (127.0.0.8, so 127.0.0.7 stays ungranted.)
		if code := postReport(t, secret, strings.Replace(body, "127.0.0.7", "127.0.0.8", 1)); code != http.StatusOK {
			t.Fatalf("report with the secret: status %d", code)
		}
		waitRCPT(t, "127.0.0.8", 250, 5*time.Second)
		expectInMap(t, s.mapBase, "127.0.0.7", false)
		expectRCPT(t, "127.0.0.7", 554)
	})

	m := metrics(t)
	for result, want := range map[string]float64{
		"granted": 3, "auth_failed": 1, "other_protocol": 1, "bad_secret": 3, "allow": 0, "bad_json": 0, "busy": 0,
	} {
		if got := m[policyRequests(result)]; got != want {
			t.Errorf("%s = %v, want %v", policyRequests(result), got, want)
		}
	}
	if m[`relaygate_messages_received_total{transport="udp"}`] != 0 || m[`relaygate_messages_received_total{transport="tcp"}`] != 0 {
		t.Errorf("relaygate received log lines; the grants must all come from reports")
	}
	if out := s.listGrants(); !strings.Contains(out, "dovecot-policy") {
		t.Errorf("relaygate list does not name daemon dovecot-policy:\n%s", out)
	}
	// What real Dovecot sent (auth_debug logs every request body).
	t.Logf("real Dovecot's auth policy requests:\n%s", grepLines(s.allLog, "Policy server request JSON"))
	if n := strings.Count(grepLines(s.allLog, "Policy server request JSON"), "\n") + 1; n < 4 {
		t.Errorf("auth_debug logged %d request bodies, want one per authentication (4)", n)
	}
	if errs := grepLines(s.allLog, "Policy server HTTP error"); errs != "" {
		t.Errorf("Dovecot reported errors from relaygate:\n%s", errs)
	}

	// With the checks off relaygate is not in the login's path: while it
	// is stopped logins succeed at once, and Dovecot, which does not queue
	// its reports, never grants them later.
	t.Run("relaygate stopped: logins succeed, not granted", func(t *testing.T) {
		if err := s.rg.stop(t, syscall.SIGTERM, 15*time.Second); err != nil {
			t.Fatalf("relaygate after SIGTERM: %v", err)
		}
		l := mustLogin(t, imapLogin, "127.0.0.9", "bob", "bobpw", true)
		// Refused at once, not waited for: over a second is logged, and
		// only a login held as long as Dovecot's policy timeout (30 s
		// here) would be relaygate in its path.
		if took := l.Answer.Sub(l.Sent); took > 10*time.Second {
			t.Errorf("IMAP login took %v with relaygate stopped", took)
		} else if took > time.Second {
			t.Logf("slow: IMAP login took %v with relaygate stopped", took)
		}
		t.Logf("IMAP login with relaygate stopped: answered in %v", l.Answer.Sub(l.Sent).Round(time.Millisecond))
		waitLog(t, s.allLog, "Policy server HTTP error", 10*time.Second)
		t.Logf("Dovecot: %s", grepLines(s.allLog, "Policy server HTTP error"))
		s.startRelaygate(syslogTCP)
		b := mustLogin(t, pop3Login, "127.0.0.10", "alice", "alicepw", true)
		grantedWithin(t, "127.0.0.10", b)
		expectInMap(t, s.mapBase, "127.0.0.9", false)
		expectRCPT(t, "127.0.0.9", 554)
		// The grants made before the stop were kept.
		expectInMap(t, s.mapBase, "127.0.0.2", true)
	})
}

// postReport sends a report as Dovecot does, with X-API-Key key ("" sends
// none), and returns the HTTP status.
func postReport(t *testing.T, key, body string) int {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, "http://"+policyAddr+"/?command=report", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	if key != "" {
		r.Header.Set("X-API-Key", key)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// submissionAuth authenticates with AUTH PLAIN to Dovecot's submission
// service from src and returns the reply to AUTH.
func submissionAuth(t *testing.T, src, user, pass string) string {
	t.Helper()
	c, err := dialFrom(src, submissionAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	// reply reads one (possibly multi-line) SMTP reply; its last line.
	reply := func() string {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("submission: %v", err)
			}
			l = strings.TrimRight(l, "\r\n")
			if len(l) < 4 || l[3] != '-' {
				return l
			}
		}
	}
	if g := reply(); !strings.HasPrefix(g, "220") {
		t.Fatalf("submission greeting %q", g)
	}
	fmt.Fprintf(c, "EHLO client.pbs.test\r\n")
	if e := reply(); !strings.HasPrefix(e, "250") {
		t.Fatalf("submission EHLO: %q", e)
	}
	fmt.Fprintf(c, "AUTH PLAIN %s\r\n", base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)))
	a := reply()
	fmt.Fprintf(c, "QUIT\r\n")
	return a
}

// startDovecotWithPolicy starts Dovecot as startDovecot does, plus its
// submission service (relaying to the suite's Postfix) and the shipped
// auth policy example, which reads the secret from secretFile.
func startDovecotWithPolicy(s *stack, secretFile string) {
	t := s.t
	dir := filepath.Join(s.dir, "dovecot")
	users := dovecotHome(t, dir)

	example, err := os.ReadFile(policyExample)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"auth_policy_server_url = http://" + policyAddr + "/\n", "= <" + policySecret + "\n"} {
		if strings.Count(string(example), want) != 1 {
			t.Fatalf("%s: want exactly one %q", policyExample, want)
		}
	}
	policyConf := filepath.Join(dir, "relaygate-policy.conf")
	testutil.WriteFile(t, policyConf, strings.Replace(string(example), "<"+policySecret, "<"+secretFile, 1), 0o644)

	conf := filepath.Join(dir, "dovecot.conf")
	// The suite's Dovecot, with submission, reporting to relaygate
	// -dovecot-policy.
	testutil.WriteFile(t, conf, dovecotConf(dir, users, "127.0.0.1", "pop3 imap submission", fmt.Sprintf(`# logs each policy request's body ("Policy server request JSON")
auth_debug = yes
# Dovecot gives up on a report after 2 s by default and logs an HTTP error,
# which this test counts as relaygate's: a loaded CI machine can stall
# relaygate that long with nothing wrong.
auth_policy_server_timeout_msecs = 30000
hostname = mail.pbs.test
submission_relay_host = 127.0.0.1
submission_relay_port = 2525
service submission-login {
  inet_listener submission {
    address = 127.0.0.1
    port = 587
  }
}
!include %s
`, policyConf)), 0o644)
	if out, err := exec.Command("doveconf", "-n", "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("doveconf -n: %v\n%s", err, out)
	} else if !strings.Contains(string(out), "auth_policy_report_after_auth = yes") && !strings.Contains(string(out), "auth_policy_server_url") {
		t.Fatalf("doveconf -n shows no auth policy settings:\n%s", out)
	}
	startProc(t, "dovecot", filepath.Join(dir, "dovecot.out"),
		exec.Command("dovecot", "-F", "-c", conf))
	waitGreeting(t, "dovecot pop3", pop3Addr, "+OK", 15*time.Second)
	waitGreeting(t, "dovecot imap", imapAddr, "* OK", 15*time.Second)
	waitGreeting(t, "dovecot submission", submissionAddr, "220 ", 15*time.Second)
}
