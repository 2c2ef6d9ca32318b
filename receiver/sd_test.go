package receiver

import (
	"net"
	"strings"
	"testing"

	"github.com/relaygate/relaygate/receiver/syslogmsg"
)

// deliverSDCases are RFC 5424 messages whose STRUCTURED-DATA a reader can
// mis-delimit, well-formed and not; syslogmsg's own tests hold the whole
// grammar, this is the sample the transport path is checked with.
var deliverSDCases = []string{
	`<38>1 2026-11-21T10:00:00Z mx dovecot 123 - [x@1 m="a\"] ` + sdLogin + `"] hello`, // issue 11: refused
	`<38>1 2026-11-21T10:00:00Z mx dovecot 123 - [x@1 m="a\"\] ` + sdLogin + `"] hello`,
	`<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1 m="a\\\"\] ` + sdLogin + `"] hello`,
	`<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1 m="a\\"] ` + sdLogin,
	`<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1 p="C:\new\"\] ` + sdLogin + `"] hello`,
	`<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a@1 x="1"][b@1 y="]"][c@1] ` + sdLogin,
	`<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a@1 x="1" x="2"][b@1 y="\]"][c@1] ` + sdLogin,
	`<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a@1 x=""]`,
	`<38>1 2026-11-21T10:00:00Z mx dovecot 1 - -`,
	"<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a@1 x=\"\\\"\"] \uFEFF" + sdLogin,
	`<38>1 - - dovecot - - [a@1 x="\""] ` + sdLogin,
	`<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a@1 x="ü\"\]"] hello`,
	`<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1]` + sdLogin,
	`<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [a@1 x="1"][a@1 x="2"] ` + sdLogin,
	`<38>1 2026-11-21T10:00:00Z mx dovecot 1 - [` + strings.Repeat("a", 33) + `] ` + sdLogin,
	`<192>1 2026-11-21T10:00:00Z mx dovecot 1 - [x@1 m="a\"\] ` + sdLogin + `"] hello`,
	"<38>1 2026-11-21T10:00:00Z m\x01x dovecot 1 - - " + sdLogin,
	`<38>1 2026-11-21T10:00:00Z mx - 1 - - ` + sdLogin,
}

const sdLogin = "imap-login: Login: user=<a>, method=PLAIN, rip=203.0.113.98, lip=192.0.2.1"

// TestDeliverStructuredData: the receiver's own path (program filter on the
// fast path's bytes, then the envelope) reads SD exactly as
// syslogmsg.ParseEnvelope does. Each case is followed by a marker datagram,
// so a refused case shows as the marker arriving first.
func TestDeliverStructuredData(t *testing.T) {
	h := start(t, Config{UDP: "127.0.0.1:0", Wanted: func(p []byte) bool { return string(p) == "dovecot" }})
	c, err := net.Dial("udp", h.r.UDPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const marker = "<38>1 2026-11-21T10:00:00Z mx dovecot 1 - - marker"
	accepted := 0
	for _, in := range deliverSDCases {
		for _, d := range []string{in, marker} {
			if _, err := c.Write([]byte(d)); err != nil {
				t.Fatal(err)
			}
		}
		if want, err := syslogmsg.ParseEnvelope([]byte(in)); err == nil {
			accepted++
			if m := h.expect(t, "dovecot", want.Text); m.Envelope != want {
				t.Errorf("%q:\n got %+v\nwant %+v", in, m.Envelope, want)
			}
		}
		h.expect(t, "dovecot", "marker")
	}
	if accepted == 0 || accepted == len(deliverSDCases) {
		t.Errorf("%d of %d cases accepted: the sample must hold both kinds", accepted, len(deliverSDCases))
	}
}
