package daemon

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"time"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/internal/fleet"
	"github.com/relaygate/relaygate/internal/grants"
)

// GrantsReply is the JSON /grants serves and `relaygate status` reads.
type GrantsReply struct {
	Now          time.Time   `json:"now"`
	GraceSeconds float64     `json:"grace_seconds"`
	Grants       []GrantInfo `json:"grants"`
	// Fleet is the -nats-url connection, when there is one.
	Fleet *fleet.Status `json:"fleet,omitempty"`
}

// GrantInfo is one grant of GrantsReply.
type GrantInfo struct {
	Addr    string    `json:"addr"`
	User    string    `json:"user,omitempty"`
	Daemon  string    `json:"daemon,omitempty"`
	Host    string    `json:"host,omitempty"`
	Expires time.Time `json:"expires"`
	// LeftSeconds is the time until Expires. While a session is open the
	// grant does not expire: it lasts until grace after the last logout.
	LeftSeconds  float64 `json:"left_seconds"`
	OpenSessions int     `json:"open_sessions"`
	// SessionSince is when the oldest open session began.
	SessionSince *time.Time `json:"session_since,omitempty"`
}

// grantSnapshot is the grant table at one moment, for /grants.
type grantSnapshot struct {
	at     time.Time
	grace  time.Duration
	grants []grants.Grant
}

func newGrantsReply(s grantSnapshot) GrantsReply {
	r := GrantsReply{Now: s.at, GraceSeconds: s.grace.Seconds(), Grants: make([]GrantInfo, 0, len(s.grants))}
	for _, g := range s.grants {
		j := GrantInfo{
			Addr: cdbwriter.Key(g.Addr), User: g.User, Daemon: g.Daemon, Host: g.Host,
			Expires:      g.Expires,
			LeftSeconds:  max(g.Expires.Sub(s.at), 0).Seconds(),
			OpenSessions: len(g.Sessions),
		}
		for _, opened := range g.Sessions {
			if j.SessionSince == nil || opened.Before(*j.SessionSince) {
				t := opened
				j.SessionSince = &t
			}
		}
		r.Grants = append(r.Grants, j)
	}
	return r
}

// grants serves the live grant table as JSON for `relaygate status`. It
// names users, so it answers loopback clients only: a metrics port opened
// to a Prometheus server elsewhere must not hand out who logged in from
// where.
func (m *monitor) grants(w http.ResponseWriter, r *http.Request) {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err != nil || !ap.Addr().Unmap().IsLoopback() {
		http.Error(w, "/grants names users and answers loopback clients only", http.StatusForbidden)
		return
	}
	reply := make(chan grantSnapshot, 1)
	read := func(t *grants.Table) {
		reply <- grantSnapshot{at: m.now(), grace: t.Grace(), grants: t.Grants()}
	}
	select {
	case m.reads <- read:
	case <-m.stopped:
		http.Error(w, "relaygate is shutting down", http.StatusServiceUnavailable)
		return
	case <-r.Context().Done():
		return
	}
	var snap grantSnapshot
	select {
	case snap = <-reply:
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// An error means the client went away; there is nothing to tell it.
	out := newGrantsReply(snap)
	if m.fleet != nil {
		out.Fleet = m.fleet()
	}
	_ = enc.Encode(out)
}
