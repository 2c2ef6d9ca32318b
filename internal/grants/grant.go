package grants

import (
	"net/netip"
	"time"
)

// Grant is one address allowed to relay until Expires, or for as long as
// it has an open session. Its JSON form is a line of the state file.
type Grant struct {
	Addr    netip.Addr `json:"addr"`
	Expires time.Time  `json:"expires"`
	User    string     `json:"user,omitempty"`
	Daemon  string     `json:"daemon,omitempty"`
	Host    string     `json:"host,omitempty"` // the syslog host that reported the login
	// Sessions maps each open session ("daemon/id") to when it opened.
	// While any is open the grant does not expire; grace runs from the
	// last logout.
	Sessions map[string]time.Time `json:"sessions,omitempty"`
}

// Open reports whether the grant has an open session.
func (g Grant) Open() bool { return len(g.Sessions) > 0 }

// Outcome says what a login did to the table.
type Outcome uint8

const (
	// Added: the address was not granted before; the map must change.
	Added Outcome = iota + 1
	// Extended: the address was already granted; only its expiry moved.
	Extended
	// Excluded: the address is in an excluded network and is never granted.
	Excluded
)

func (o Outcome) String() string {
	switch o {
	case Added:
		return "added"
	case Extended:
		return "extended"
	case Excluded:
		return "excluded"
	}
	return "unknown"
}

// EventKind says what an Event asks of the grant table.
type EventKind uint8

const (
	// The zero kind names nothing: a zero Event, or one whose kind was
	// forgotten, must never grant, so it is ignored.
	_ EventKind = iota
	// EventLogin grants Grant.Addr; a Session keeps it open until its logout.
	EventLogin
	// EventLogout closes Grant.Daemon's Session.
	EventLogout
	// EventExclude replaces the excluded networks (a SIGHUP reload).
	EventExclude
	// EventMark changes nothing: only its Seq matters, so that a caller
	// numbering its input learns when everything before it is durable
	// (the journal source acknowledges entries that made no event).
	EventMark
)

// Event is one instruction for the grant table, received at At
// (relaygate's clock, not the syslog header's).
type Event struct {
	Kind    EventKind
	Grant   Grant  // for a logout only Daemon and User are used
	Session string // the daemon's session id, if it logs one
	At      time.Time
	Exclude []netip.Prefix // EventExclude only
	// Seq, if the caller numbers its events (increasing), lets it learn
	// when an event's effect would survive a crash (cdbwriter's
	// Service.Durable).
	Seq uint64
}
