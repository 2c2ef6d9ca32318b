package fleet

import "fmt"

// Status is what `relaygate status` shows of the fleet.
type Status struct {
	Name       string `json:"name"`
	Mode       string `json:"mode"`
	Stream     string `json:"stream"`
	Connected  bool   `json:"connected"`
	Server     string `json:"server,omitempty"`
	Start      string `json:"start,omitempty"`
	AppliedSeq uint64 `json:"applied_sequence"`
	Lag        int64  `json:"lag_events"`
	Buffered   int64  `json:"buffered_events"`
	Reconnects int64  `json:"reconnects"`
}

// Status reports the connection as it is now.
func (f *Fleet) Status() *Status {
	if f == nil {
		return nil
	}
	s := &Status{
		Name: f.cfg.Name, Mode: f.cfg.Mode, Stream: f.cfg.Stream,
		Connected:  f.nc.IsConnected(),
		AppliedSeq: f.stats.appliedSeq.Load(),
		Lag:        f.stats.lag.Load(),
		Buffered:   f.stats.outbox.Load(),
		Reconnects: f.stats.reconnects.Load(),
	}
	if s.Connected {
		s.Server = redact(f.nc.ConnectedUrl())
	}
	if p := f.started.Load(); p != nil {
		s.Start = *p
	}
	return s
}

// String is Status in one line.
func (s *Status) String() string {
	state := "DISCONNECTED (grants keep working here; events wait in the outbox)"
	if s.Connected {
		state = "connected to " + s.Server
	}
	return fmt.Sprintf("fleet: %s, stream %s, as %s (%s): applied up to #%d, lag %d, outbox %d, reconnects %d",
		state, s.Stream, s.Name, s.Mode, s.AppliedSeq, s.Lag, s.Buffered, s.Reconnects)
}
