package receiver

import (
	"strings"

	"github.com/relaygate/relaygate/internal/origin"
	"github.com/relaygate/relaygate/receiver/syslogmsg"
)

// claim reads what a message says about its writer: the origin element in
// its STRUCTURED-DATA, believed only from a sender trusted to add one, and
// refused outright when the text carries a look-alike.
func (r *Receiver) claim(env syslogmsg.Envelope, src source) origin.Claim {
	sdID := r.cfg.OriginSDID
	if sdID == "" {
		sdID = origin.DefaultSDID
	}
	if env.SD == "" || env.SD == "-" {
		// The common case: nothing to read but the text.
		return origin.Judge(false, nil, false, env.Text, sdID)
	}
	elems, err := syslogmsg.ParseStructuredData(env.SD)
	if err != nil {
		// The envelope's own reader accepted this SD, so this does not
		// happen; if it did, nothing in it can vouch for anyone.
		return origin.Refuse(origin.Malformed)
	}
	var (
		present bool
		params  []origin.Param
	)
	for _, el := range elems {
		switch {
		case el.ID == sdID:
			present = true
			for _, p := range el.Params {
				params = append(params, origin.Param{Name: p.Name, Value: p.Value})
			}
		case strings.EqualFold(el.ID, sdID):
			// SD-IDs are case-sensitive; one that differs only in case
			// is a look-alike, not ours, and not innocent.
			return origin.Refuse(origin.Malformed)
		}
	}
	return origin.Judge(present, params, r.originTrusted(src), env.Text, sdID)
}

// originTrusted says whether src may add an origin element.
func (r *Receiver) originTrusted(src source) bool {
	// tlsPeer is set only for a verified client certificate: -tls, or
	// RELP over TLS (Admit).
	if (src.transport == "tls" || src.transport == "relp") && src.tlsPeer != "" && r.cfg.OriginFromTLS {
		return true
	}
	if src.transport == "unix" {
		for _, uid := range r.cfg.OriginFromUnix {
			if src.uid >= 0 && int64(uid) == src.uid {
				return true
			}
		}
		return false
	}
	if !src.addr.IsValid() {
		return false
	}
	a := src.addr.Addr().Unmap()
	for _, p := range r.cfg.OriginFrom {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
