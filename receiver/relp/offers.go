package relp

import (
	"bytes"
	"errors"
	"strconv"
)

// Offers (librelp's offers.c, copen.c): the DATA of an "open" is lines
// "NAME[=VALUE[,VALUE…]]" joined by LF. The client must offer relp_version;
// relaygate requires "syslog" among its commands, as librelp's server does
// when syslog is required, and answers with its own offers. Unknown offers
// are ignored, as librelp ignores them.

// clientOffers is what relaygate reads from an open.
type clientOffers struct {
	version  int // relp_version
	syslog   bool
	software string // relp_software, as sent (for the log)
}

var (
	errNoVersion = errors.New("no relp_version offer")
	errNoSyslog  = errors.New("the client does not offer the syslog command")
)

// parseOffers reads the open's DATA. Its errors are protocol errors that
// close the session after a "500" answer.
func parseOffers(data []byte) (clientOffers, error) {
	o := clientOffers{version: -1}
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		if len(line) == 0 {
			continue
		}
		name, values, _ := bytes.Cut(line, []byte{'='})
		if len(name) > maxOfferName {
			return o, errors.New("offer name longer than 32 octets")
		}
		var vals [][]byte
		if len(values) > 0 {
			vals = bytes.Split(values, []byte{','})
		}
		if len(vals) > maxOfferValues {
			return o, errors.New("more than 64 values in one offer")
		}
		for _, v := range vals {
			if len(v) > maxOfferValue {
				return o, errors.New("offer value longer than 255 octets")
			}
		}
		switch string(name) {
		case "relp_version":
			if len(vals) == 0 {
				return o, errors.New("relp_version without a value")
			}
			v, ok := offerInt(vals[0])
			if !ok {
				return o, errors.New("relp_version is not a number")
			}
			o.version = v
		case "commands":
			for _, v := range vals {
				if string(v) == cmdSyslog {
					o.syslog = true
				}
			}
		case "relp_software":
			o.software = string(line[len(name):])
			if len(o.software) > 0 {
				o.software = o.software[1:]
			}
		}
	}
	if o.version < 0 {
		return o, errNoVersion
	}
	if !o.syslog {
		return o, errNoSyslog
	}
	return o, nil
}

// offerInt reads an unsigned decimal offer value (librelp takes only
// digits, and at most 9 of them fit its int).
func offerInt(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > maxDigits {
		return 0, false
	}
	v := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// protocolVersion is the highest relp_version relaygate answers with.
// librelp speaks version 0 (RELP_CURR_PROTOCOL_VERSION) and refuses a
// server that answers more than it offered; the specification calls
// itself version 1. Both describe the same frames and commands, so
// relaygate answers with the lower of the client's and 1.
const protocolVersion = 1

// openAnswer is the text of the rsp to a good open: the status line, then
// the server's offers, relp_version first, as librelp writes them.
func openAnswer(clientVersion int, software string) string {
	v := min(clientVersion, protocolVersion)
	return "200 OK\nrelp_version=" + strconv.Itoa(v) +
		"\nrelp_software=" + software +
		"\ncommands=" + cmdSyslog
}
