package origin

import (
	"fmt"
	"slices"
)

// Mode is -origin: how much a grant depends on its line's origin.
type Mode uint8

const (
	// ModeVerify (the default): a line that carries an origin grants only if
	// the origin is allowed for its daemon; a line without one is judged
	// as before.
	ModeVerify Mode = iota
	// ModeRequire: a line without a verified, allowed origin never grants.
	ModeRequire
	// ModeOff: origins are not looked at.
	ModeOff
)

var modeNames = [...]string{ModeVerify: "verify", ModeRequire: "require", ModeOff: "off"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("mode(%d)", m)
}

// ParseMode reads -origin's value.
func ParseMode(s string) (Mode, error) {
	for m, name := range modeNames {
		if s == name {
			return Mode(m), nil
		}
	}
	return 0, fmt.Errorf("-origin %q: want off, verify or require", s)
}

// DefaultUIDMin is login.defs' UID_MIN on Debian, used when the file does
// not say.
const DefaultUIDMin = 1000

// Pin narrows what may write a daemon's login lines. An empty list does
// not narrow. UIDs replaces the default rule (below UIDMin) for the
// daemon, so a daemon that logs as a login-range account can be allowed by
// naming that uid; the other lists add conditions.
type Pin struct {
	UIDs  []int64
	Units []string
	Exes  []string
	Comms []string
}

// Policy is the origin check of one configuration. The zero value is
// ModeVerify with no pins and DefaultUIDMin; callers set UIDMin from
// login.defs (LoadUIDMin).
type Policy struct {
	Mode   Mode
	UIDMin int64
	Pins   map[string]Pin // by the parser's daemon name
}

// Refusal reasons, a fixed set (they label a metric).
const (
	ReasonNoOrigin  = "no_origin"
	ReasonUntrusted = "untrusted_sender"
	ReasonMalformed = "malformed"
	ReasonInText    = "in_text"
	ReasonLoginUser = "login_user"
	ReasonUID       = "uid_not_pinned"
	ReasonUnit      = "unit_not_pinned"
	ReasonExe       = "exe_not_pinned"
	ReasonComm      = "comm_not_pinned"
)

// Reasons lists every refusal reason, for metrics that are exported at 0.
var Reasons = []string{ReasonNoOrigin, ReasonUntrusted, ReasonMalformed, ReasonInText, ReasonLoginUser, ReasonUID, ReasonUnit, ReasonExe, ReasonComm}

// Check says whether a login line of daemon with claim c may grant, and if
// not, why.
func (p *Policy) Check(daemon string, c Claim) (ok bool, reason string) {
	if p.Mode == ModeOff {
		return true, ""
	}
	switch c.State() {
	case None:
		if p.Mode == ModeRequire {
			return false, ReasonNoOrigin
		}
		return true, ""
	case Untrusted:
		return false, ReasonUntrusted
	case Malformed:
		return false, ReasonMalformed
	case InText:
		return false, ReasonInText
	case Verified:
	default:
		return false, ReasonMalformed
	}
	o := c.Origin() // Verify made sure it has a uid
	uidMin := p.UIDMin
	if uidMin <= 0 {
		uidMin = DefaultUIDMin
	}
	pin, pinned := p.Pins[daemon]
	switch {
	case pinned && len(pin.UIDs) > 0:
		if !slices.Contains(pin.UIDs, o.UID) {
			return false, ReasonUID
		}
	case o.UID >= uidMin:
		return false, ReasonLoginUser
	}
	if !pinned {
		return true, ""
	}
	if len(pin.Units) > 0 && !slices.Contains(pin.Units, o.Unit) {
		return false, ReasonUnit
	}
	if len(pin.Exes) > 0 && !slices.Contains(pin.Exes, o.Exe) {
		return false, ReasonExe
	}
	if len(pin.Comms) > 0 && !slices.Contains(pin.Comms, o.Comm) {
		return false, ReasonComm
	}
	return true, ""
}
