package receiver

import (
	"crypto/tls"
	"encoding/pem"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

// newPKI is the shared test PKI: a CA, a server certificate for
// 127.0.0.1, ::1 and localhost, a client certificate (mx1.example) signed
// by the CA, and one signed by another CA.
func newPKI(t *testing.T) *testutil.PKI {
	t.Helper()
	return testutil.NewPKI(t, "", testutil.PKIOptions{})
}

// tlsListen is a Config for a TLS listener with pki's server certificate,
// requiring a client certificate of its CA when clientCA is set.
func tlsListen(p *testutil.PKI, clientCA bool) Config {
	cfg := Config{TLS: "127.0.0.1:0", TLSCert: p.ServerCert, TLSKey: p.ServerKey}
	if clientCA {
		cfg.TLSClientCA = p.CAFile
	}
	return cfg
}

func dialTLS(t *testing.T, addr net.Addr, conf *tls.Config) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr.String(), conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

const rfc5424Login = "<22>1 2026-11-21T10:00:00.000001+01:00 mx1 imapd 77 - - LOGIN, user=a, ip=[::ffff:192.0.2.7], port=[1]"

func TestTLS(t *testing.T) {
	pki := newPKI(t)
	tests := []struct {
		name       string
		clientCA   bool
		cert       *tls.Certificate
		maxVersion uint16
		plain      bool   // speak plain syslog to the TLS port
		refused    string // in the logged handshake error; empty = delivered
		tlsPeer    string
	}{
		{name: "signed client", clientCA: true, cert: &pki.Client, tlsPeer: "mx1.example"},
		{name: "signed client TLS 1.2", clientCA: true, cert: &pki.Client, maxVersion: tls.VersionTLS12, tlsPeer: "mx1.example"},
		{name: "no client certificate", clientCA: true, refused: "didn't provide a certificate"},
		{name: "client certificate of another CA", clientCA: true, cert: &pki.Rogue, refused: "unknown authority"},
		{name: "other CA TLS 1.2", clientCA: true, cert: &pki.Rogue, maxVersion: tls.VersionTLS12, refused: "unknown authority"},
		{name: "no client certificate TLS 1.2", clientCA: true, maxVersion: tls.VersionTLS12, refused: "didn't provide a certificate"},
		{name: "no client CA, no client certificate", tlsPeer: ""},
		{name: "no client CA, certificate of another CA", cert: &pki.Rogue, tlsPeer: ""},
		{name: "TLS 1.1 client", cert: &pki.Client, maxVersion: tls.VersionTLS11, refused: "version"},
		{name: "plain syslog on the TLS port", plain: true, refused: "TLS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, tlsListen(pki, tc.clientCA))
			stream := itoa(len(rfc5424Login)) + " " + rfc5424Login + login3164 + "\n"
			var c net.Conn
			if tc.plain {
				raw, err := net.Dial("tcp", h.r.TLSAddr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer raw.Close()
				raw.Write([]byte(stream))
				c = raw
			} else {
				conf := pki.ClientConfig(tc.cert)
				if tc.maxVersion != 0 {
					conf.MinVersion, conf.MaxVersion = tls.VersionTLS10, tc.maxVersion
				}
				tconn, err := tls.Dial("tcp", h.r.TLSAddr().String(), conf)
				if err == nil {
					// With TLS 1.3 the client finishes its side before the
					// server has checked its certificate: the write may
					// succeed and must still be refused.
					defer tconn.Close()
					tconn.Write([]byte(stream))
					c = tconn
				}
			}
			if tc.refused != "" {
				waitCount(t, "TLSRefused", &h.stats.tlsRefused, 1)
				if c != nil {
					expectClosed(t, c)
				}
				h.expectNothing(t)
				if got := h.stats.tls.Load(); got != 0 {
					t.Errorf("TLS messages = %d, want 0", got)
				}
				h.expectLog(t, `"reason":"tls_refused"`, `"peer":"127.0.0.1:`, tc.refused)
				return
			}
			for _, want := range []struct{ program, text string }{
				{"imapd", "LOGIN, user=a, ip=[::ffff:192.0.2.7], port=[1]"},
				{"dovecot", "pop3-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1"},
			} {
				m := h.expect(t, want.program, want.text)
				if m.Transport != "tls" || !strings.HasPrefix(m.Peer, "127.0.0.1:") || m.TLSPeer != tc.tlsPeer {
					t.Errorf("transport %q peer %q TLS peer %q, want tls 127.0.0.1:* %q", m.Transport, m.Peer, m.TLSPeer, tc.tlsPeer)
				}
			}
			if got := h.stats.tls.Load(); got != 2 {
				t.Errorf("TLS messages = %d, want 2", got)
			}
			if got := h.stats.tlsRefused.Load(); got != 0 {
				t.Errorf("TLSRefused = %d, want 0", got)
			}
		})
	}
}

// The -allow check comes before the handshake: an outside sender costs no
// TLS work and is counted as NotAllowed, not TLSRefused.
func TestTLSAllowBeforeHandshake(t *testing.T) {
	pki := newPKI(t)
	cfg := tlsListen(pki, true)
	cfg.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	h := start(t, cfg)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	if c, err := tls.DialWithDialer(d, "tcp", h.r.TLSAddr().String(), pki.ClientConfig(&pki.Client)); err == nil {
		c.Close()
		t.Fatal("handshake with a sender outside -allow succeeded")
	}
	waitCount(t, "NotAllowed", &h.stats.notAllowed, 1)
	if got := h.stats.tlsRefused.Load(); got != 0 {
		t.Errorf("TLSRefused = %d, want 0", got)
	}
}

func TestTLSHandshakeTimeout(t *testing.T) {
	pki := newPKI(t)
	cfg := tlsListen(pki, true)
	cfg.tlsHandshakeTimeout = 50 * time.Millisecond
	h := start(t, cfg)
	c, err := net.Dial("tcp", h.r.TLSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectClosed(t, c) // says nothing; the server gives up
	waitCount(t, "TLSRefused", &h.stats.tlsRefused, 1)
	waitCount(t, "ConnectionsOpen", &h.stats.connectionsOpen, 0)
	h.expectLog(t, `"reason":"tls_refused"`, "no handshake within 50ms")
}

func TestTLSListenErrors(t *testing.T) {
	pki := newPKI(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a PEM file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badDER := filepath.Join(dir, "bad-der.pem")
	testutil.WriteFile(t, badDER, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})), 0o600)
	unreadable := filepath.Join(dir, "unreadable.pem")
	if err := os.Mkdir(unreadable, 0o700); err != nil { // a directory can't be read as a file
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     func(c *Config)
		mention []string
	}{
		{"no certificate", func(c *Config) { c.TLSCert = "" }, []string{"-tls-cert"}},
		{"no key", func(c *Config) { c.TLSKey = "" }, []string{"-tls-key"}},
		{"certificate missing", func(c *Config) { c.TLSCert = missing }, []string{missing, "no such file"}},
		{"certificate unreadable", func(c *Config) { c.TLSCert = unreadable }, []string{unreadable}},
		{"certificate not PEM", func(c *Config) { c.TLSCert = garbage }, []string{garbage, "CERTIFICATE"}},
		{"certificate bad DER", func(c *Config) { c.TLSCert = badDER }, []string{badDER}},
		{"certificate file given as key", func(c *Config) { c.TLSKey = pki.ServerCert }, []string{pki.ServerCert, "PRIVATE KEY"}},
		{"key missing", func(c *Config) { c.TLSKey = missing }, []string{missing, "no such file"}},
		{"key not PEM", func(c *Config) { c.TLSKey = garbage }, []string{garbage, "PRIVATE KEY"}},
		{"key of another certificate", func(c *Config) { c.TLSKey = pki.ClientKeyFile }, []string{pki.ClientKeyFile, pki.ServerCert}},
		{"client CA missing", func(c *Config) { c.TLSClientCA = missing }, []string{missing, "no such file"}},
		{"client CA not PEM", func(c *Config) { c.TLSClientCA = garbage }, []string{garbage, "CERTIFICATE"}},
		{"client CA is a key", func(c *Config) { c.TLSClientCA = pki.ServerKey }, []string{pki.ServerKey, "CERTIFICATE"}},
		{"client CA bad DER", func(c *Config) { c.TLSClientCA = badDER }, []string{badDER}},
		{"TLS files without -tls", func(c *Config) { c.TLS = "" }, []string{"-tls"}},
		{"bad TLS address", func(c *Config) { c.TLS = "127.0.0.1:notaport" }, []string{"notaport"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tlsListen(pki, true)
			tc.cfg(&cfg)
			r, err := Listen(cfg)
			if err == nil {
				r.Close()
				t.Fatal("Listen succeeded")
			}
			t.Log(err)
			for _, s := range tc.mention {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
	// And the good files work.
	r, err := Listen(tlsListen(pki, true))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
}
