package origin

import (
	"fmt"
	"strings"
)

// DefaultSDID is the STRUCTURED-DATA element that carries a line's origin
// from rsyslog to relaygate (examples/rsyslog-relaygate-origin.conf writes
// it). 32473 is the documentation enterprise number of RFC 5612: relaygate
// has none of its own. An SD-ID without "@" would be one of IANA's (RFC
// 5424 §7 registers "origin" for something else).
const DefaultSDID = "relaygate@32473"

// Param is one PARAM-NAME="PARAM-VALUE" of an SD element, unescaped.
type Param struct{ Name, Value string }

// paramNames are the parameters an origin element may carry, each once.
// rsyslog's imuxsock (ParseTrusted) gives uid, gid, pid, exe and the
// process name it calls appname; imjournal gives the journal's fields,
// unit among them.
var paramNames = map[string]bool{"uid": true, "gid": true, "pid": true, "exe": true, "comm": true, "appname": true, "unit": true}

// ParseElement reads the parameters of one origin element. Every parameter
// must be known and appear once, ids must be decimal, and the uid must be
// there: an element that says nothing about its writer's uid proves
// nothing.
func ParseElement(params []Param) (Origin, error) {
	o := Unknown
	seen := make(map[string]bool, len(params))
	for _, p := range params {
		name := p.Name
		if !paramNames[name] {
			return Unknown, fmt.Errorf("origin element: unknown parameter %q", name)
		}
		if name == "appname" {
			name = "comm"
		}
		if seen[name] {
			return Unknown, fmt.Errorf("origin element: parameter %q given twice", p.Name)
		}
		seen[name] = true
		var err error
		switch name {
		case "uid":
			o.UID, err = parseID("uid", p.Value)
		case "gid":
			o.GID, err = parseID("gid", p.Value)
		case "pid":
			o.PID, err = parseID("pid", p.Value)
		case "exe":
			o.Exe, err = field("exe", p.Value)
		case "comm":
			o.Comm, err = field("comm", p.Value)
		case "unit":
			o.Unit, err = field("unit", p.Value)
		}
		if err != nil {
			return Unknown, fmt.Errorf("origin element: %w", err)
		}
	}
	if o.UID < 0 {
		return Unknown, fmt.Errorf("origin element: no uid")
	}
	return o, nil
}

// field checks a string field: printable, no longer than a path can be.
func field(name, v string) (string, error) {
	if len(v) > 4096 {
		return "", fmt.Errorf("%s: %d bytes, too long", name, len(v))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] == 0x7f {
			return "", fmt.Errorf("%s %q: control character", name, v)
		}
	}
	return v, nil
}

// MentionsElement reports whether text carries something shaped like the
// origin element sdID: "[" followed by the SD-ID, ASCII case folded. Only
// a forger puts it in a message's text, hoping a careless template or
// parser takes it for the real one.
func MentionsElement(text, sdID string) bool {
	marker := "[" + sdID
	if len(text) < len(marker) {
		return false
	}
	for i := strings.IndexByte(text, '['); i >= 0 && i+len(marker) <= len(text); {
		if strings.EqualFold(text[i:i+len(marker)], marker) {
			return true
		}
		j := strings.IndexByte(text[i+1:], '[')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// Judge turns what a syslog message carried into a Claim. present says
// whether its STRUCTURED-DATA held the origin element (with params);
// trusted whether its sender may add one; text is the message's text.
func Judge(present bool, params []Param, trusted bool, text, sdID string) Claim {
	if MentionsElement(text, sdID) {
		return Refuse(InText)
	}
	if !present {
		return Claim{}
	}
	if !trusted {
		return Refuse(Untrusted)
	}
	o, err := ParseElement(params)
	if err != nil {
		return Refuse(Malformed)
	}
	return Verify(o)
}
