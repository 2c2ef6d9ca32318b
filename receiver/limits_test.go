package receiver

import (
	"crypto/tls"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

const loginText = "pop3-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1"

// dialStream opens a TCP or TLS (client certificate of the test CA)
// connection to h.
func dialStream(t *testing.T, h *harness, pki *testutil.PKI, transport string) net.Conn {
	t.Helper()
	if transport == "tls" {
		return dialTLS(t, h.r.TLSAddr(), pki.ClientConfig(&pki.Client))
	}
	c, err := net.Dial("tcp", h.r.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestMaxMessageEveryTransport(t *testing.T) {
	pki := newPKI(t)
	const max = 300
	prefix := "<22>Nov 21 10:00:00 mx1 dovecot[812]: "
	body := func(n int, fill string) string { return prefix + strings.Repeat(fill, n-len(prefix)) }

	// Each transport gets the same sequence; send(body, trailer) frames one
	// message the transport's way, trailer ("" or "\r\n") being what some
	// senders append.
	type sendFunc func(body, trailer string)
	datagram := func(t *testing.T, c net.Conn) sendFunc {
		return func(b, trailer string) {
			if _, err := c.Write([]byte(b + trailer)); err != nil {
				t.Fatal(err)
			}
		}
	}
	lineFramed := func(t *testing.T, c net.Conn) sendFunc {
		return func(b, trailer string) {
			if trailer == "" {
				trailer = "\n"
			}
			if _, err := c.Write([]byte(b + trailer)); err != nil {
				t.Fatal(err)
			}
		}
	}
	octetCounted := func(t *testing.T, c net.Conn) sendFunc {
		return func(b, trailer string) {
			if _, err := c.Write([]byte(itoa(len(b+trailer)) + " " + b + trailer)); err != nil {
				t.Fatal(err)
			}
		}
	}
	transports := []struct {
		name string
		cfg  func(t *testing.T) Config
		open func(t *testing.T, h *harness) sendFunc
	}{
		{"udp", func(*testing.T) Config { return Config{UDP: "127.0.0.1:0"} }, func(t *testing.T, h *harness) sendFunc {
			c, err := net.Dial("udp", h.r.UDPAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return datagram(t, c)
		}},
		{"unix", func(t *testing.T) Config { return Config{Unix: filepath.Join(t.TempDir(), "s")} }, func(t *testing.T, h *harness) sendFunc {
			c, err := net.Dial("unixgram", h.r.cfg.Unix)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return datagram(t, c)
		}},
		{"tcp-lf", func(*testing.T) Config { return Config{TCP: "127.0.0.1:0"} }, func(t *testing.T, h *harness) sendFunc {
			return lineFramed(t, dialStream(t, h, pki, "tcp"))
		}},
		{"tcp-octet", func(*testing.T) Config { return Config{TCP: "127.0.0.1:0"} }, func(t *testing.T, h *harness) sendFunc {
			return octetCounted(t, dialStream(t, h, pki, "tcp"))
		}},
		{"tls-lf", func(*testing.T) Config { return tlsListen(pki, true) }, func(t *testing.T, h *harness) sendFunc {
			return lineFramed(t, dialStream(t, h, pki, "tls"))
		}},
		{"tls-octet", func(*testing.T) Config { return tlsListen(pki, true) }, func(t *testing.T, h *harness) sendFunc {
			return octetCounted(t, dialStream(t, h, pki, "tls"))
		}},
	}
	messages := []struct {
		body, trailer string
		delivered     bool
	}{
		{body(max, "a"), "", true},
		{body(max+1, "b"), "", false},
		{body(max, "c"), "\r\n", true}, // the CR LF is not counted
		{body(max+1, "d"), "\r\n", false},
		{body(max-1, "e"), "", true},
		{strings.Repeat("f", 10*max), "", false}, // far over, and no header
		{login3164, "", true},                    // the stream goes on
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			cfg := tr.cfg(t)
			cfg.maxMessage = max
			h := start(t, cfg)
			send := tr.open(t, h)
			tooLong := int64(0)
			for _, m := range messages {
				send(m.body, m.trailer)
				if !m.delivered {
					tooLong++
				}
			}
			for _, m := range messages {
				if m.delivered {
					h.expect(t, "dovecot", m.body[strings.Index(m.body, ": ")+2:])
				}
			}
			h.expectNothing(t)
			if got := h.stats.tooLong.Load(); got != tooLong {
				t.Errorf("TooLong = %d, want %d", got, tooLong)
			}
		})
	}
}

func TestMaxConns(t *testing.T) {
	pki := newPKI(t)
	for _, transport := range []string{"tcp", "tls"} {
		t.Run(transport, func(t *testing.T) {
			cfg := tlsListen(pki, false)
			cfg.TCP = "127.0.0.1:0"
			cfg.MaxConns = 2
			h := start(t, cfg)
			// The limit is shared: one connection of each kind fills it.
			first := dialStream(t, h, pki, "tcp")
			second := dialStream(t, h, pki, "tls")
			waitCount(t, "ConnectionsOpen", &h.stats.connectionsOpen, 2)

			// Over the limit: accepted and closed at once; on the TLS port
			// before any handshake. From another address, which has room
			// under its own per-host limit.
			addr := map[string]net.Addr{"tcp": h.r.TCPAddr(), "tls": h.r.TLSAddr()}[transport]
			other := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
			over, err := other.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer over.Close()
			expectClosed(t, over)
			waitCount(t, "ConnsRefused", &h.stats.connsRefused, 1)
			if got := h.stats.tlsRefused.Load(); got != 0 {
				t.Errorf("TLSRefused = %d, want 0", got)
			}
			h.expectLog(t, `"reason":"max_conns"`, `"peer":"127.0.0.2:`)

			// The open connections are unaffected.
			second.Write([]byte(login3164 + "\n"))
			h.expect(t, "dovecot", loginText)
			// Once one closes, a new one is served.
			first.Close()
			waitCount(t, "ConnectionsOpen", &h.stats.connectionsOpen, 1)
			c := dialStream(t, h, pki, transport)
			c.Write([]byte(login3164 + "\n"))
			m := h.expect(t, "dovecot", loginText)
			if m.Transport != transport {
				t.Errorf("transport = %q, want %q", m.Transport, transport)
			}
			if got := h.stats.connectionsAccepted.Load(); got != 3 {
				t.Errorf("ConnectionsAccepted = %d, want 3", got)
			}
		})
	}
}

// One sender holding connections, idle or stuck before its TLS handshake,
// must not lock out the others: past MaxConnsPerHost its connections are
// refused at accept, counted across the TCP and TLS listeners, and another
// address still gets a slot. Before the per-host limit, 20 connections of
// 127.0.0.1 filled -max-conns and refused every other sender.
func TestMaxConnsPerHost(t *testing.T) {
	pki := newPKI(t)
	for _, transport := range []string{"tcp", "tls"} {
		t.Run(transport, func(t *testing.T) {
			cfg := tlsListen(pki, true)
			cfg.TCP = "127.0.0.1:0"
			cfg.MaxConns = 8 // the per-host default is then 2
			h := start(t, cfg)
			// The flood alternates between the ports; on the TLS port it
			// never says hello, so a slot it got would be held for the
			// whole handshake timeout.
			flood := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}, Timeout: 5 * time.Second}
			for i := 0; i < 20; i++ {
				addr := []net.Addr{h.r.TCPAddr(), h.r.TLSAddr()}[i%2]
				c, err := flood.Dial("tcp", addr.String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			waitCount(t, "ConnsRefusedPerHost", &h.stats.connsRefusedPerHost, 18)
			waitCount(t, "ConnectionsOpen", &h.stats.connectionsOpen, 2)
			h.expectLog(t, `"reason":"per_host"`, `"peer":"127.0.0.1:`, "-max-conns-per-host")

			other := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
			var c net.Conn
			var err error
			if transport == "tls" {
				c, err = tls.DialWithDialer(other, "tcp", h.r.TLSAddr().String(), pki.ClientConfig(&pki.Client))
			} else {
				c, err = other.Dial("tcp", h.r.TCPAddr().String())
			}
			if err != nil {
				t.Fatalf("second sender refused: %v", err)
			}
			defer c.Close()
			if _, err := c.Write([]byte(login3164 + "\n")); err != nil {
				t.Fatal(err)
			}
			m := h.expect(t, "dovecot", loginText)
			if m.Transport != transport || !strings.HasPrefix(m.Peer, "127.0.0.2:") {
				t.Errorf("transport %q peer %q, want %s from 127.0.0.2", m.Transport, m.Peer, transport)
			}
			for name, c := range map[string]*atomic.Int64{
				"ConnectionsAccepted": &h.stats.connectionsAccepted, "ConnsRefused": &h.stats.connsRefused,
				"TLSRefused": &h.stats.tlsRefused, "ConnsNotAllowed": &h.stats.connsNotAllowed,
			} {
				want := map[string]int64{"ConnectionsAccepted": 3}[name]
				if got := c.Load(); got != want {
					t.Errorf("%s = %d, want %d", name, got, want)
				}
			}
		})
	}
}

// When the per-host limit leaves room but MaxConns is reached, the refusal
// is counted as max_conns; a sender outside Allow as not_allowed; each
// reason once.
func TestConnRefusalReasons(t *testing.T) {
	h := start(t, Config{
		TCP: "127.0.0.1:0", MaxConns: 2, MaxConnsPerHost: 1,
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/30")},
	})
	dial := func(from string) net.Conn {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", h.r.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial("127.0.0.1")
	dial("127.0.0.0")
	waitCount(t, "ConnectionsOpen", &h.stats.connectionsOpen, 2)
	expectClosed(t, dial("127.0.0.1")) // its own limit first
	waitCount(t, "ConnsRefusedPerHost", &h.stats.connsRefusedPerHost, 1)
	expectClosed(t, dial("127.0.0.4")) // outside -allow
	waitCount(t, "ConnsNotAllowed", &h.stats.connsNotAllowed, 1)
	if got := h.stats.connsRefused.Load(); got != 0 {
		t.Errorf("ConnsRefused = %d before MaxConns was the reason", got)
	}
	expectClosed(t, dial("127.0.0.2")) // room for it as a host, none in all
	waitCount(t, "ConnsRefused", &h.stats.connsRefused, 1)
	got := samples(h.stats)
	for series, want := range map[string]float64{
		`relaygate_connections_refused_total{reason="max_conns"}`:   1,
		`relaygate_connections_refused_total{reason="per_host"}`:    1,
		`relaygate_connections_refused_total{reason="not_allowed"}`: 1,
		`relaygate_messages_dropped_total{reason="not_allowed"}`:    1,
		"relaygate_receiver_connections_open":                       2,
	} {
		if got[series] != want {
			t.Errorf("%s = %v, want %v", series, got[series], want)
		}
	}
}

func TestHostKey(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"[::ffff:192.0.2.1]:5", "192.0.2.1:6"},
		{"[::ffff:127.0.0.1]:1", "127.0.0.1:2"},
		{"[2001:db8::1]:1", "[2001:db8::1]:2"},
	} {
		if ka, kb := hostKey(netip.MustParseAddrPort(tc.a)), hostKey(netip.MustParseAddrPort(tc.b)); ka != kb {
			t.Errorf("%s counts as %s, %s as %s: one host counted twice", tc.a, ka, tc.b, kb)
		}
	}
	// Neighbours in one /64 are different hosts.
	if hostKey(netip.MustParseAddrPort("[2001:db8::1]:1")) == hostKey(netip.MustParseAddrPort("[2001:db8::2]:1")) {
		t.Error("two IPv6 addresses share one key")
	}
}

func TestDefaultMaxConnsPerHost(t *testing.T) {
	for maxConns, want := range map[int]int{1: 1, 2: 2, 4: 2, 8: 2, 16: 2, 32: 4, 64: 8, 256: 16, 10000: 16} {
		if got := DefaultMaxConnsPerHost(maxConns); got != want {
			t.Errorf("DefaultMaxConnsPerHost(%d) = %d, want %d", maxConns, got, want)
		}
	}
	if _, err := Listen(Config{TCP: "127.0.0.1:0", MaxConns: 4, MaxConnsPerHost: 5}); err == nil || !strings.Contains(err.Error(), "-max-conns-per-host 5") {
		t.Errorf("per-host limit over the total: %v", err)
	}
}

func TestMaxConnsDefault(t *testing.T) {
	r, err := Listen(Config{TCP: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.cfg.MaxConns != DefaultMaxConns || r.cfg.tlsHandshakeTimeout != defaultTLSHandshakeTimeout || r.cfg.MaxConnsPerHost != 16 {
		t.Errorf("MaxConns %d, per host %d, handshake timeout %s", r.cfg.MaxConns, r.cfg.MaxConnsPerHost, r.cfg.tlsHandshakeTimeout)
	}
}

func TestIdleTimeout(t *testing.T) {
	pki := newPKI(t)
	for _, transport := range []string{"tcp", "tls"} {
		t.Run(transport, func(t *testing.T) {
			cfg := tlsListen(pki, true)
			cfg.TCP = "127.0.0.1:0"
			cfg.IdleTimeout = time.Second // the first write must come before it, on a loaded machine too
			h := start(t, cfg)
			c := dialStream(t, h, pki, transport)
			if _, err := c.Write([]byte(login3164 + "\n")); err != nil {
				t.Fatal(err)
			}
			h.expect(t, "dovecot", loginText)
			expectClosed(t, c) // then nothing: the server hangs up
			waitCount(t, "IdleClosed", &h.stats.idleClosed, 1)
			waitCount(t, "ConnectionsOpen", &h.stats.connectionsOpen, 0)
			h.expectLog(t, `"level":"info"`, `"reason":"idle"`, `"peer":"127.0.0.1:`)
		})
	}
}

func TestAllowHosts(t *testing.T) {
	tests := []struct {
		name      string
		msg       string
		delivered bool
	}{
		{"listed, other case", "<22>Nov 21 10:00:00 MX1 dovecot[1]: one", true},
		{"listed FQDN, RFC 5424", "<22>1 2026-11-21T10:00:00Z relay.example.org dovecot 1 - - two", true},
		{"not listed", "<22>Nov 21 10:00:00 mx2 dovecot[1]: three", false},
		{"FQDN of a listed short name", "<22>Nov 21 10:00:00 mx1.example.org dovecot[1]: four", false},
		// go-syslog puts this machine's name in a missing RFC 3164 HOSTNAME.
		{"no HOSTNAME (local form)", "<22>Nov 21 10:00:00 dovecot[1]: five", false},
		{"RFC 5424 NILVALUE", "<22>1 2026-11-21T10:00:00Z - dovecot 1 - - six", false},
		{"listed again", "<22>Nov 21 10:00:00 mx1 dovecot[1]: seven", true},
	}
	h := start(t, Config{UDP: "127.0.0.1:0", TCP: "127.0.0.1:0", AllowHosts: []string{"mx1", " Relay.Example.ORG ", ""}})
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			before := h.stats.hostNotAllowed.Load()
			c, err := net.Dial(transport, map[string]net.Addr{"udp": h.r.UDPAddr(), "tcp": h.r.TCPAddr()}[transport].String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			dropped := int64(0)
			for _, tc := range tests {
				if _, err := c.Write([]byte(tc.msg + "\n")); err != nil {
					t.Fatal(err)
				}
				if !tc.delivered {
					dropped++
				}
			}
			for _, tc := range tests {
				if tc.delivered {
					h.expect(t, "dovecot", tc.msg[strings.LastIndex(tc.msg, " ")+1:])
				}
			}
			h.expectNothing(t)
			if got := h.stats.hostNotAllowed.Load() - before; got != dropped {
				t.Errorf("HostNotAllowed = %d, want %d", got, dropped)
			}
		})
	}
	h.expectLog(t, `"reason":"host_not_allowed"`, `\"mx2\"`)
}

// Cancelling Serve ends open TLS connections and handshakes in progress at
// once, not after the handshake or idle timeouts.
func TestShutdownWithOpenConnections(t *testing.T) {
	pki := newPKI(t)
	cfg := tlsListen(pki, true)
	cfg.TCP = "127.0.0.1:0"
	// The silent client would hold Serve this long if the stop waited
	// for its handshake: far above the test's bound below.
	cfg.tlsHandshakeTimeout = 2 * time.Minute
	h := start(t, cfg)

	idleTLS := dialStream(t, h, pki, "tls")
	idleTLS.Write([]byte(login3164 + "\n"))
	h.expect(t, "dovecot", loginText) // handshake done, reading
	idleTCP := dialStream(t, h, pki, "tcp")
	silent, err := net.Dial("tcp", h.r.TLSAddr().String()) // never says hello
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	waitCount(t, "ConnectionsOpen", &h.stats.connectionsOpen, 3)

	h.cancel()
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return within 30 s of cancel: it waited for the silent client's handshake")
	}
	for _, c := range []net.Conn{idleTLS, idleTCP, silent} {
		expectClosed(t, c)
	}
	if got := h.stats.tlsRefused.Load(); got != 0 {
		t.Errorf("TLSRefused = %d: shutdown counted as refusal", got)
	}
	if got := h.stats.connectionsOpen.Load(); got != 0 {
		t.Errorf("ConnectionsOpen = %d after shutdown", got)
	}
}
