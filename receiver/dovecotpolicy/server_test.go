package dovecotpolicy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/rs/zerolog"
)

// postReport sends one report as Dovecot does (a fresh client, the 2 s
// timeout of auth_policy_server_timeout_msecs) and returns its status and
// how long it took.
func postReport(t *testing.T, addr, remote string) (int, time.Duration, error) {
	t.Helper()
	r, _ := http.NewRequest("POST", "http://"+addr+"/?command=report", strings.NewReader(report("imap", remote, true)))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-API-Key", "s3cret")
	c := &http.Client{Timeout: 2 * time.Second}
	start := time.Now()
	resp, err := c.Do(r)
	if err != nil {
		return 0, time.Since(start), err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if !resp.Close {
		t.Errorf("answer without Connection: close (%v)", resp.Header)
	}
	return resp.StatusCode, time.Since(start), nil
}

// A local user holding many connections to the endpoint (idle after a
// refused request, silent, half a request, a slow body) does not keep
// Dovecot's reports out: the oldest connections are closed to make room,
// and every refused answer closes its connection at once.
func TestServerHeldConnections(t *testing.T) {
	const limit = 16
	h, k := newTestHandler(t, "s3cret")
	srv, err := listen("127.0.0.1:0", h, limit)
	if err != nil {
		t.Fatal(err)
	}
	srv.Serve(zerolog.New(zerolog.NewTestWriter(t)))
	defer srv.Close()
	addr := srv.Addr().String()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// Refused requests (405, 403) on keep-alive connections: answered,
	// then closed by the server; the attacker cannot hold them.
	for _, raw := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /?command=report HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
	} {
		c := dial()
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(testutil.EventuallyFloor))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if !resp.Close || (resp.StatusCode != 405 && resp.StatusCode != 403) {
			t.Errorf("%q: %d, close %v", raw, resp.StatusCode, resp.Close)
		}
		if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
			t.Errorf("%q: the server kept the connection open (%d, %v)", raw, n, err)
		}
	}

	// Then three times the limit of connections held open: silent, half
	// a request's headers, a body that never comes.
	for i := range 3 * limit {
		c := dial()
		switch i % 3 {
		case 1:
			_, _ = io.WriteString(c, "POST /?command=report HTTP/1.1\r\nHost: x\r\n")
		case 2:
			_, _ = io.WriteString(c, "POST /?command=report HTTP/1.1\r\nHost: x\r\nX-API-Key: s3cret\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
		}
	}
	for i := range 5 {
		status, took, err := postReport(t, addr, "192.0.2.1"+string(rune('0'+i)))
		if err != nil || status != 200 || took > time.Second {
			t.Fatalf("report %d with %d connections held: %d in %v, %v", i, 3*limit, status, took, err)
		}
	}
	if n := len(k.got()); n != 5 {
		t.Errorf("%d logins delivered, want 5", n)
	}
	if n := srv.ln.open(); n > limit {
		t.Errorf("%d connections open, limit %d", n, limit)
	}
	if e := h.Stats().Evicted(); e < 2*limit {
		t.Errorf("evicted %d, want at least %d", e, 2*limit)
	}
}

// A connection that sends nothing, or stops within its headers, is closed
// after readHeaderTimeout.
func TestServerReadHeaderTimeout(t *testing.T) {
	h, _ := newTestHandler(t, "s3cret")
	srv, err := Listen("127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	srv.Serve(zerolog.New(zerolog.NewTestWriter(t)))
	defer srv.Close()
	for _, sent := range []string{"", "POST / HTTP/1.1\r\nHost: x\r\n"} {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, sent)
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(testutil.EventuallyFloor))
		_, _ = io.Copy(io.Discard, c) // until the server closes it
		if took := time.Since(start); took < readHeaderTimeout/2 || took > readHeaderTimeout+3*time.Second {
			t.Errorf("sent %q: closed after %v, want about %v", sent, took, readHeaderTimeout)
		}
		c.Close()
	}
}
