package origincheck

import (
	"strings"
	"testing"

	"github.com/relaygate/relaygate/internal/origin"
)

// -relp-tls with -tls-client-ca and -origin-from tls is a trusted path as
// -tls is; -relp without it, beside -journal under verify, is an open
// listener.
func TestCheckSetupRELP(t *testing.T) {
	trusted := Setup{Mode: origin.ModeRequire, FromTLS: true, TLSClientCA: "ca.pem", RELP: "0.0.0.0:2514", RELPTLS: true}
	o := find(Check(trusted, ""), "origin")
	if len(o) != 1 || o[0].Problem || !strings.Contains(o[0].String(), "TLS senders with a client certificate") {
		t.Errorf("-relp-tls with a client CA under require: %v", o)
	}
	plain := trusted
	plain.RELPTLS = false
	if o := find(Check(plain, ""), "origin"); len(o) != 1 || !o[0].Problem {
		t.Errorf("plain -relp under require, nothing else trusted: %v", o)
	}
	open := func(s Setup) bool {
		for _, f := range Check(s, "") {
			if f.ID == "origin-listeners" && f.Problem && strings.Contains(f.Msg, "-relp ") {
				return true
			}
		}
		return false
	}
	beside := Setup{Mode: origin.ModeVerify, Journal: true, RELP: "127.0.0.1:2514"}
	if !open(beside) {
		t.Error("journal + plain -relp under verify not reported")
	}
	beside.RELPTLS, beside.FromTLS, beside.TLSClientCA = true, true, "ca.pem"
	if open(beside) {
		t.Error("journal + -relp-tls with client certificates reported")
	}
}
