package dovecotpolicy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// observedIMAP is what real Dovecot 2.3.19.1 sent for an IMAP login
// (auth_debug's "Policy server request JSON" line, and the body the e2e
// suite's endpoint received).
const observedIMAP = `{"device_id":"","login":"alice","protocol":"imap","pwhash":"0fa1","remote":"127.0.0.1","session_id":"kaC1D/1hMMl/AAAB","success":true,"policy_reject":false,"tls":false}`

// report builds a report body like Dovecot's default attributes make.
func report(protocol, remote string, success bool) string {
	return fmt.Sprintf(`{"device_id":"","login":"alice","protocol":%q,"pwhash":"0fa1","remote":%q,"session_id":"kaC1D/1hMMl/AAAB","success":%v,"policy_reject":false,"tls":false}`,
		protocol, remote, success)
}

// sink collects delivered logins.
type sink struct {
	mu     sync.Mutex
	logins []Login
	refuse bool
}

func (s *sink) deliver(l Login) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse {
		return false
	}
	s.logins = append(s.logins, l)
	return true
}

func (s *sink) got() []Login {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Login(nil), s.logins...)
}

var testNow = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func newTestHandler(t *testing.T, secret string) (*Handler, *sink) {
	t.Helper()
	var sec *Secret
	if secret != "" {
		s, err := ParseSecret(secret)
		if err != nil {
			t.Fatal(err)
		}
		sec = &s
	}
	k := &sink{}
	h := NewHandler(Config{
		Secret: sec, Deliver: k.deliver, Now: func() time.Time { return testNow },
		Logger: zerolog.New(zerolog.NewTestWriter(t)),
	})
	return h, k
}

type req struct {
	method, target, contentType, body string
	headers                           map[string][]string
	remoteAddr                        string
}

func do(h http.Handler, r req) *httptest.ResponseRecorder {
	if r.method == "" {
		r.method = http.MethodPost
	}
	if r.target == "" {
		r.target = "/?command=report"
	}
	if r.contentType == "" {
		r.contentType = "application/json"
	}
	hr := httptest.NewRequest(r.method, r.target, strings.NewReader(r.body))
	if r.contentType != "-" {
		hr.Header.Set("Content-Type", r.contentType)
	}
	for k, vs := range r.headers {
		for _, v := range vs {
			hr.Header.Add(k, v)
		}
	}
	if r.remoteAddr != "" {
		hr.RemoteAddr = r.remoteAddr
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, hr)
	return w
}

func TestObservedReportGrants(t *testing.T) {
	h, k := newTestHandler(t, "X-API-Key:s3cret")
	w := do(h, req{body: observedIMAP, headers: map[string][]string{"X-Api-Key": {"s3cret"}}, remoteAddr: "127.0.0.1:40000"})
	if w.Code != 200 || w.Body.String() != okBody {
		t.Fatalf("answer %d %q, want 200 %s", w.Code, w.Body, okBody)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	got := k.got()
	if len(got) != 1 {
		t.Fatalf("delivered %v, want one login", got)
	}
	l := got[0]
	if l.Addr.String() != "127.0.0.1" || l.User != "alice" || l.Protocol != "imap" || l.Session != "kaC1D/1hMMl/AAAB" ||
		l.Peer != "127.0.0.1" || !l.Received.Equal(testNow) {
		t.Errorf("login %+v", l)
	}
	if n := h.Stats().Count(ResultGranted); n != 1 {
		t.Errorf("granted counted %d", n)
	}
}

// TestReportsThatGrant: IMAP and POP3 only, addresses as Dovecot may
// print them (IPv4, IPv6, IPv4-mapped → unmapped, as Postfix looks it up).
func TestReportsThatGrant(t *testing.T) {
	for _, c := range []struct{ protocol, remote, want string }{
		{"imap", "192.0.2.10", "192.0.2.10"},
		{"pop3", "192.0.2.11", "192.0.2.11"},
		{"imap", "2001:db8::25", "2001:db8::25"},
		{"pop3", "2001:DB8:0:0:0:0:0:26", "2001:db8::26"},
		{"imap", "::ffff:192.0.2.12", "192.0.2.12"},
		{"imap", "::1", "::1"},
		{"pop3", "10.1.2.3", "10.1.2.3"},
	} {
		h, k := newTestHandler(t, "")
		w := do(h, req{body: report(c.protocol, c.remote, true)})
		got := k.got()
		if w.Code != 200 || len(got) != 1 || got[0].Addr.String() != c.want {
			t.Errorf("%s %s: answer %d, delivered %v; want 200 and %s", c.protocol, c.remote, w.Code, got, c.want)
		}
	}
}

// TestReportsThatDoNotGrant are good reports (200) that never grant.
func TestReportsThatDoNotGrant(t *testing.T) {
	cases := []struct {
		name string
		body string
		want Result
	}{
		{"failed imap", report("imap", "192.0.2.10", false), ResultAuthFailed},
		{"failed pop3", report("pop3", "192.0.2.10", false), ResultAuthFailed},
		{"policy refused", strings.Replace(report("imap", "192.0.2.10", true), `"policy_reject":false`, `"policy_reject":true`, 1), ResultAuthFailed},
		{"submission", report("submission", "192.0.2.10", true), ResultOtherProtocol},
		{"smtp (Postfix SASL)", report("smtp", "192.0.2.10", true), ResultOtherProtocol},
		{"managesieve", report("sieve", "192.0.2.10", true), ResultOtherProtocol},
		{"lmtp", report("lmtp", "192.0.2.10", true), ResultOtherProtocol},
		{"doveadm", report("doveadm", "192.0.2.10", true), ResultOtherProtocol},
		{"upper-case IMAP", report("IMAP", "192.0.2.10", true), ResultOtherProtocol},
		{"imap-urlauth", report("imap-urlauth", "192.0.2.10", true), ResultOtherProtocol},
		{"no protocol", report("", "192.0.2.10", true), ResultOtherProtocol},
		{"no remote (unix socket login)", report("imap", "", true), ResultBadAddress},
		{"remote missing", `{"login":"alice","protocol":"imap","success":true,"policy_reject":false,"tls":false}`, ResultBadAddress},
		{"unspecified", report("imap", "0.0.0.0", true), ResultBadAddress},
		{"unspecified v6", report("imap", "::", true), ResultBadAddress},
		{"broadcast", report("imap", "255.255.255.255", true), ResultBadAddress},
		{"multicast", report("pop3", "224.0.0.1", true), ResultBadAddress},
		{"link-local", report("imap", "169.254.1.1", true), ResultBadAddress},
		{"link-local v6", report("imap", "fe80::1", true), ResultBadAddress},
		{"zone", report("imap", "fe80::1%eth0", true), ResultBadAddress},
		{"this network", report("imap", "0.1.2.3", true), ResultBadAddress},
		{"mapped unspecified", report("imap", "::ffff:0.0.0.0", true), ResultBadAddress},
		{"bracketed", report("imap", "[192.0.2.10]", true), ResultBadAddress},
		{"with port", report("imap", "192.0.2.10:143", true), ResultBadAddress},
		{"host name", report("imap", "client.example.net", true), ResultBadAddress},
		{"two addresses", report("imap", "192.0.2.10 192.0.2.11", true), ResultBadAddress},
		{"leading space", report("imap", " 192.0.2.10", true), ResultBadAddress},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, k := newTestHandler(t, "")
			w := do(h, req{body: c.body})
			if w.Code != 200 {
				t.Errorf("answer %d, want 200", w.Code)
			}
			if got := k.got(); len(got) != 0 {
				t.Errorf("granted %v", got)
			}
			if n := h.Stats().Count(c.want); n != 1 {
				t.Errorf("%s counted %d, want 1", c.want, n)
			}
		})
	}
}

func TestAllowIsAnsweredContinue(t *testing.T) {
	h, k := newTestHandler(t, "")
	body := `{"device_id":"","login":"alice","protocol":"imap","pwhash":"0fa1","remote":"192.0.2.10","session_id":"KWV+EP1hsLl/AAAB","tls":false}`
	w := do(h, req{target: "/?command=allow", body: body})
	if w.Code != 200 || w.Body.String() != `{"status":0,"msg":""}` {
		t.Fatalf("answer %d %q", w.Code, w.Body)
	}
	if len(k.got()) != 0 || h.Stats().Count(ResultAllow) != 1 {
		t.Fatalf("allow granted %v or was not counted", k.got())
	}
	// An allow body with "success" (Dovecot never sends one) does not
	// grant either.
	do(h, req{target: "/?command=allow", body: report("imap", "192.0.2.10", true)})
	if len(k.got()) != 0 {
		t.Fatal("allow granted")
	}
}

// TestURLForms: Dovecot appends "?command=" to auth_policy_server_url, or
// "command=" when the URL ends in "&"; any path is taken.
func TestURLForms(t *testing.T) {
	for _, target := range []string{"/?command=report", "/policy?command=report", "/x?site=a&command=report"} {
		h, k := newTestHandler(t, "")
		if w := do(h, req{target: target, body: report("imap", "192.0.2.10", true)}); w.Code != 200 || len(k.got()) != 1 {
			t.Errorf("%s: answer %d, delivered %d", target, w.Code, len(k.got()))
		}
	}
}

// TestRefusals: every class of bad request gets its status, is counted by
// its reason, and never grants.
func TestRefusals(t *testing.T) {
	const secret = "X-API-Key:s3cret"
	good := map[string][]string{"X-Api-Key": {"s3cret"}}
	body := report("imap", "192.0.2.10", true)
	cases := []struct {
		name   string
		r      req
		status int
		want   Result
	}{
		{"GET", req{method: "GET", headers: good, body: body}, 405, ResultBadMethod},
		{"PUT", req{method: "PUT", headers: good, body: body}, 405, ResultBadMethod},
		{"OPTIONS preflight", req{method: "OPTIONS", body: body}, 405, ResultBadMethod},
		{"no secret", req{body: body}, 403, ResultBadSecret},
		{"wrong secret", req{headers: map[string][]string{"X-Api-Key": {"s3cre"}}, body: body}, 403, ResultBadSecret},
		{"longer secret", req{headers: map[string][]string{"X-Api-Key": {"s3cret2"}}, body: body}, 403, ResultBadSecret},
		{"secret twice", req{headers: map[string][]string{"X-Api-Key": {"s3cret", "s3cret"}}, body: body}, 403, ResultBadSecret},
		{"secret in another header", req{headers: map[string][]string{"Authorization": {"s3cret"}}, body: body}, 403, ResultBadSecret},
		{"no command", req{target: "/", headers: good, body: body}, 400, ResultBadCommand},
		{"unknown command", req{target: "/?command=grant", headers: good, body: body}, 400, ResultBadCommand},
		{"two commands", req{target: "/?command=report&command=report", headers: good, body: body}, 400, ResultBadCommand},
		{"bad query", req{target: "/?command=report&%zz", headers: good, body: body}, 400, ResultBadCommand},
		{"text/plain", req{contentType: "text/plain", headers: good, body: body}, 415, ResultBadContentType},
		{"form", req{contentType: "application/x-www-form-urlencoded", headers: good, body: body}, 415, ResultBadContentType},
		{"no content type", req{contentType: "-", headers: good, body: body}, 415, ResultBadContentType},
		{"too large", req{headers: good, body: `{"login":"` + strings.Repeat("a", MaxBody) + `"}`}, 413, ResultTooLarge},
		{"empty body", req{headers: good, body: ""}, 400, ResultBadJSON},
		{"not JSON", req{headers: good, body: "remote=192.0.2.10"}, 400, ResultBadJSON},
		{"array", req{headers: good, body: `[` + body + `]`}, 400, ResultBadJSON},
		{"truncated", req{headers: good, body: body[:len(body)-1]}, 400, ResultBadJSON},
		{"two objects", req{headers: good, body: body + body}, 400, ResultBadJSON},
		{"remote twice", req{headers: good, body: `{"remote":"192.0.2.99",` + body[1:]}, 400, ResultBadJSON},
		{"remote escaped twice", req{headers: good, body: `{"remot\u0065":"192.0.2.99",` + body[1:]}, 400, ResultBadJSON},
		{"success twice", req{headers: good, body: strings.TrimSuffix(body, "}") + `,"success":false}`}, 400, ResultBadJSON},
		{"success a string", req{headers: good, body: strings.Replace(body, `"success":true`, `"success":"true"`, 1)}, 400, ResultBadJSON},
		{"success null", req{headers: good, body: strings.Replace(body, `"success":true`, `"success":null`, 1)}, 400, ResultBadJSON},
		{"no success in a report", req{headers: good, body: strings.Replace(body, `"success":true,`, ``, 1)}, 400, ResultBadJSON},
		{"remote a number", req{headers: good, body: `{"remote":3221225994,"protocol":"imap","success":true}`}, 400, ResultBadJSON},
		{"remote null", req{headers: good, body: `{"remote":null,"protocol":"imap","success":true}`}, 400, ResultBadJSON},
		{"protocol an array", req{headers: good, body: `{"remote":"192.0.2.10","protocol":["imap"],"success":true}`}, 400, ResultBadJSON},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, k := newTestHandler(t, secret)
			w := do(h, c.r)
			if w.Code != c.status {
				t.Errorf("status %d, want %d (%s)", w.Code, c.status, w.Body)
			}
			if got := k.got(); len(got) != 0 {
				t.Errorf("granted %v", got)
			}
			for _, r := range Results {
				want := int64(0)
				if r == c.want {
					want = 1
				}
				if n := h.Stats().Count(r); n != want {
					t.Errorf("%s counted %d, want %d", r, n, want)
				}
			}
			if c.status == 405 && w.Header().Get("Allow") != "POST" {
				t.Errorf("405 without Allow: POST")
			}
			// Whatever the refusal, Dovecot reads "continue".
			if !strings.HasPrefix(w.Body.String(), `{"status":0,`) {
				t.Errorf("body %q", w.Body)
			}
		})
	}
}

func TestBusyIs503(t *testing.T) {
	h, k := newTestHandler(t, "")
	k.refuse = true
	if w := do(h, req{body: report("imap", "192.0.2.10", true)}); w.Code != 503 {
		t.Fatalf("status %d, want 503", w.Code)
	}
	if h.Stats().Count(ResultBusy) != 1 {
		t.Fatal("busy not counted")
	}
}

// TestSecretHeaderForms: auth_policy_server_api_header as Dovecot reads it.
func TestSecretHeaderForms(t *testing.T) {
	for _, c := range []struct {
		setting, header, value string
	}{
		{"s3cret", "X-API-Key", "s3cret"},
		{"X-API-Key:s3cret", "X-API-Key", "s3cret"},
		{"X-API-Key: s3cret", "X-API-Key", "s3cret"}, // Dovecot sends "X-API-Key:  s3cret"
		{"Authorization:Bearer abc.def", "Authorization", "Bearer abc.def"},
		{"X-Relaygate-Secret:a:b:c", "X-Relaygate-Secret", "a:b:c"},
	} {
		h, k := newTestHandler(t, c.setting)
		w := do(h, req{body: report("pop3", "192.0.2.10", true), headers: map[string][]string{c.header: {c.value}}})
		if w.Code != 200 || len(k.got()) != 1 {
			t.Errorf("setting %q, header %s: %q: status %d", c.setting, c.header, c.value, w.Code)
		}
	}
}

func TestParseSecretRefuses(t *testing.T) {
	for _, s := range []string{"", " ", "X-API-Key:", "X-API-Key: ", "s3cret\n", "X-API-Key:s3cret\r\n", "Bad Header:x", ":x", "x\x01y", "caf\xc3\xa9"} {
		if _, err := ParseSecret(s); err == nil {
			t.Errorf("ParseSecret(%q) accepted", s)
		}
	}
}

// TestServerEndToEnd: the real listener, a real HTTP client, timeouts set.
func TestServerEndToEnd(t *testing.T) {
	h, k := newTestHandler(t, "s3cret")
	srv, err := Listen("127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	srv.Serve(zerolog.New(zerolog.NewTestWriter(t)))
	defer srv.Close()
	post := func(secret, body string) int {
		r, _ := http.NewRequest("POST", "http://"+srv.Addr().String()+"/?command=report", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if secret != "" {
			r.Header.Set("X-API-Key", secret)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	if c := post("s3cret", report("imap", "2001:db8::7", true)); c != 200 {
		t.Fatalf("status %d", c)
	}
	if c := post("", report("imap", "192.0.2.66", true)); c != 403 {
		t.Fatalf("status %d without the secret", c)
	}
	got := k.got()
	if len(got) != 1 || got[0].Addr.String() != "2001:db8::7" || got[0].Peer != "127.0.0.1" {
		t.Fatalf("delivered %v", got)
	}
	srv.Close()
	srv.Close() // twice is harmless
}
