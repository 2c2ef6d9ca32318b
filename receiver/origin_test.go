package receiver

import (
	"crypto/tls"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/relaygate/relaygate/internal/origin"
	"github.com/relaygate/relaygate/internal/testutil"
)

const originText = "imap-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1"

// TestOriginClaims: an origin element is believed only from a trusted
// sender; from anyone else, in a different case, or copied into the text it
// vouches for nobody; two of them make the message malformed.
func TestOriginClaims(t *testing.T) {
	h := start(t, Config{
		UDP:        "127.0.0.1:0",
		OriginFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	send := func(from string, msg string) {
		t.Helper()
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, h.r.UDPAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	const hdr = "<22>1 2026-11-21T10:00:00Z mx1 dovecot 812 - "
	root := `[relaygate@32473 uid="0" gid="0" pid="812" exe="/usr/lib/dovecot/log" appname="log"]`
	cases := []struct {
		name, from, msg string
		state           origin.State
		uid             int64
	}{
		{"trusted sender", "127.0.0.1", hdr + root + " " + originText, origin.Verified, 0},
		{"trusted, beside another element", "127.0.0.1", hdr + `[meta@32473 x="1"]` + root + " " + originText, origin.Verified, 0},
		{"untrusted sender", "127.0.0.2", hdr + root + " " + originText, origin.Untrusted, -1},
		{"no element", "127.0.0.1", hdr + "- " + originText, origin.None, -1},
		{"3164, no element", "127.0.0.1", "<22>Nov 21 10:00:00 mx1 dovecot[812]: " + originText, origin.None, -1},
		{"look-alike in the text", "127.0.0.1", hdr + "- " + root + " " + originText, origin.InText, -1},
		{"look-alike in a 3164 text", "127.0.0.1", "<22>Nov 21 10:00:00 mx1 dovecot[812]: " + root + originText, origin.InText, -1},
		{"look-alike after the real one", "127.0.0.1", hdr + root + " " + originText + ` [relaygate@32473 uid="0"]`, origin.InText, -1},
		{"SD-ID in another case", "127.0.0.1", hdr + `[RelayGate@32473 uid="0"] ` + originText, origin.Malformed, -1},
		{"uid not a number", "127.0.0.1", hdr + `[relaygate@32473 uid="root"] ` + originText, origin.Malformed, -1},
		{"no uid", "127.0.0.1", hdr + `[relaygate@32473 pid="1"] ` + originText, origin.Malformed, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			send(c.from, c.msg)
			m := <-h.out
			if m.Origin.State() != c.state || m.Origin.Origin().UID != c.uid {
				t.Fatalf("claim %v uid %d, want %v uid %d", m.Origin.State(), m.Origin.Origin().UID, c.state, c.uid)
			}
		})
	}
	// The same element twice is not a well-formed message at all.
	before := h.stats.malformed.Load()
	send("127.0.0.1", hdr+root+root+" "+originText)
	waitCount(t, "malformed", &h.stats.malformed, before+1)
	h.expectNothing(t)
}

// TestOriginFromTLS: a sender with a verified client certificate is
// trusted when OriginFromTLS says so, and not otherwise.
func TestOriginFromTLS(t *testing.T) {
	pki := testutil.NewPKI(t, "", testutil.PKIOptions{})
	msg := `<22>1 2026-11-21T10:00:00Z mx1 dovecot 812 - [relaygate@32473 uid="0"] ` + originText
	for _, trust := range []bool{true, false} {
		cfg := tlsListen(pki, true)
		cfg.OriginFromTLS = trust
		h := start(t, cfg)
		c, err := tls.Dial("tcp", h.r.TLSAddr().String(), pki.ClientConfig(&pki.Client))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(itoa(len(msg)) + " " + msg)); err != nil {
			t.Fatal(err)
		}
		m := h.expect(t, "dovecot", originText)
		want := origin.Untrusted
		if trust {
			want = origin.Verified
		}
		if m.Origin.State() != want {
			t.Errorf("OriginFromTLS %v: claim %v, want %v", trust, m.Origin.State(), want)
		}
		c.Close()
	}
}

// TestOriginFromUnixCredentials: on the unix socket the kernel names each
// datagram's sender; with OriginFromUnix an origin element is believed
// from those uids only. The same element written to the same socket by
// uid 65534 (with the real logger, as a local user would) is Untrusted.
func TestOriginFromUnixCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		if testutil.InCI() {
			t.Fatal("needs root to send as another user")
		}
		t.Skip("needs root to send as another user")
	}
	logger := testutil.RequireProgram(t, "logger", "apt-get install bsdutils")
	setpriv := testutil.RequireProgram(t, "setpriv", "apt-get install util-linux")
	dir, err := os.MkdirTemp("", "relaygate-unixcred-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "log")
	h := start(t, Config{Unix: path, UnixMode: 0o666, OriginFromUnix: []uint32{0}})
	send := func(asNobody bool) Message {
		t.Helper()
		args := []string{"-u", path, "--rfc5424=notq", "-t", "dovecot", "--sd-id", "relaygate@32473", "--sd-param", `uid="0"`, originText}
		cmd := exec.Command(logger, args...)
		if asNobody {
			cmd = exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", logger}, args...)...)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", cmd.Args, err, out)
		}
		return h.expect(t, "dovecot", originText)
	}
	if m := send(false); m.Origin.State() != origin.Verified || m.Origin.Origin().UID != 0 {
		t.Errorf("root's element: %v", m.Origin.State())
	}
	if m := send(true); m.Origin.State() != origin.Untrusted {
		t.Errorf("uid 65534's element: %v, want untrusted", m.Origin.State())
	}
}
