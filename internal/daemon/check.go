package daemon

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/relaygate/relaygate/receiver"
)

// Check refuses a configuration the daemon cannot run and fills in what
// follows from the rest: the map's .cdb suffix, the state file beside it,
// the per-host connection limit. Its messages name the flags.
func (c *Config) Check() error {
	if c.TakeoverTimeout <= 0 {
		return fmt.Errorf("-takeover-timeout %s: must be positive", c.TakeoverTimeout)
	}
	if c.Grace <= 0 {
		return fmt.Errorf("-grace %s: must be positive", c.Grace)
	}
	if c.MaxEntries <= 0 {
		return fmt.Errorf("-max-entries %d: must be positive", c.MaxEntries)
	}
	if c.MaxSession <= 0 {
		return fmt.Errorf("-max-session %s: must be positive", c.MaxSession)
	}
	if c.Flush <= 0 {
		return fmt.Errorf("-flush %s: must be positive", c.Flush)
	}
	if c.UDP == "" && c.TCP == "" && c.Unix == "" && c.TLS == "" {
		if !c.Journal.On && c.DovecotPolicy.Addr == "" {
			return errors.New("-udp, -tcp, -tls and -unix are all empty and -journal is off: nothing to read logins from")
		}
		if c.Takeover {
			return errors.New("-takeover replaces a running relaygate's listeners, and none is set (with -journal alone no takeover is needed: the journal keeps what is logged while relaygate restarts)")
		}
	}
	if c.Journal.Dir != "" && !c.Journal.On {
		return errors.New("-journal-dir is only used with -journal")
	}
	if err := c.DovecotPolicy.check(c.Origin.Mode); err != nil {
		return err
	}
	if c.UDPReadBuf <= 0 {
		return fmt.Errorf("-udp-rcvbuf %d: must be positive", c.UDPReadBuf)
	}
	if c.MaxConns <= 0 {
		return fmt.Errorf("-max-conns %d: must be positive", c.MaxConns)
	}
	switch {
	case c.MaxConnsPerHost < 0:
		return fmt.Errorf("-max-conns-per-host %d: must not be negative (0 chooses from -max-conns)", c.MaxConnsPerHost)
	case c.MaxConnsPerHost > c.MaxConns:
		return fmt.Errorf("-max-conns-per-host %d: more than -max-conns %d", c.MaxConnsPerHost, c.MaxConns)
	case c.MaxConnsPerHost == 0:
		c.MaxConnsPerHost = receiver.DefaultMaxConnsPerHost(c.MaxConns)
	}
	if c.UnixGroup != "" && c.Unix == "" {
		return errors.New("-unix-group is only used with -unix")
	}
	if c.IdleTimeout < 0 {
		return fmt.Errorf("-idle-timeout %s: must not be negative", c.IdleTimeout)
	}
	if c.MapPath == "" {
		return errors.New("-map: empty path")
	}
	if c.Metrics != "" {
		if _, _, err := net.SplitHostPort(c.Metrics); err != nil {
			return fmt.Errorf("-metrics %q: want host:port, such as 127.0.0.1:9725: %w", c.Metrics, err)
		}
	}
	if !strings.HasSuffix(c.MapPath, ".cdb") {
		// Postfix opens cdb:NAME as NAME.cdb, so that is the file to write.
		c.MapPath += ".cdb"
	}
	if c.StatePath == "" {
		c.StatePath = strings.TrimSuffix(c.MapPath, ".cdb") + ".state"
	}
	return nil
}
