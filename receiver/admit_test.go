package receiver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/origin"
)

// TestAdmit: a message that reached the daemon another way (RELP) passes
// the same checks as the receiver's own: the program filter, the HOSTNAME
// list, the origin element believed only from a sender in OriginFrom or
// with a verified TLS client certificate and OriginFromTLS; each drop
// counted as the receiver counts its own.
func TestAdmit(t *testing.T) {
	r, err := listenFor(t, Config{
		AllowHosts:    []string{"mx1"},
		OriginFrom:    []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")},
		OriginFromTLS: true,
		Wanted:        func(p []byte) bool { return string(p) == "dovecot" },
	})
	if err != nil {
		t.Fatal(err)
	}
	const hdr = "<22>1 2026-11-21T10:00:00Z mx1 dovecot 812 - "
	root := `[relaygate@32473 uid="0" gid="0" pid="812" exe="/usr/lib/dovecot/log" appname="log"]`
	trusted, other := netip.MustParseAddrPort("192.0.2.1:4000"), netip.MustParseAddrPort("192.0.2.2:4000")
	at := time.Date(2026, 11, 21, 10, 0, 1, 0, time.UTC)

	m, ok := r.Admit([]byte(hdr+root+" "+originText+"\n"), "relp", trusted, "", at)
	if !ok || m.Program != "dovecot" || m.Text != originText || m.Transport != "relp" || m.Peer != trusted.String() || !m.Received.Equal(at) {
		t.Fatalf("admitted %v: %+v", ok, m)
	}
	if m.Origin.State() != origin.Verified {
		t.Errorf("from a sender in OriginFrom: %v, want verified", m.Origin.State())
	}
	if m, _ := r.Admit([]byte(hdr+root+" "+originText), "relp", other, "", at); m.Origin.State() != origin.Untrusted {
		t.Errorf("from another sender: %v, want untrusted", m.Origin.State())
	}
	if m, _ := r.Admit([]byte(hdr+root+" "+originText), "relp", other, "mx1.example", at); m.Origin.State() != origin.Verified || m.TLSPeer != "mx1.example" {
		t.Errorf("with a verified client certificate: %v %q, want verified", m.Origin.State(), m.TLSPeer)
	}
	if m, ok := r.Admit([]byte("<22>Nov 21 10:00:00 mx1 dovecot[812]: "+originText), "relp", other, "", time.Time{}); !ok || m.Received.IsZero() {
		t.Errorf("a zero time of receipt is the receiver's clock: %v %v", ok, m.Received)
	}
	for _, drop := range []string{
		"<22>Nov 21 10:00:00 mx1 cron[1]: " + originText,      // unwanted program
		"<22>Nov 21 10:00:00 mx2 dovecot[812]: " + originText, // HOSTNAME not allowed
		"no tag at all",
		"",
	} {
		if m, ok := r.Admit([]byte(drop), "relp", other, "", at); ok {
			t.Errorf("%q admitted: %+v", drop, m)
		}
	}
	if r.stats.unwanted.Load() != 1 || r.stats.hostNotAllowed.Load() != 1 || r.stats.malformed.Load() != 1 {
		t.Errorf("dropped: unwanted %d, host %d, malformed %d; want 1 each",
			r.stats.unwanted.Load(), r.stats.hostNotAllowed.Load(), r.stats.malformed.Load())
	}
}
