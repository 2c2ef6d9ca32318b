package daemon

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/relaygate/relaygate/internal/postfix"
	"github.com/relaygate/relaygate/receiver"
)

// Check refuses a configuration the daemon cannot run and fills in what
// follows from the rest: the map's .cdb suffix, the state file beside it,
// the per-host connection limit, the unix socket's mode. Its messages
// name the flags. New calls it, so a Config built in code is held to the
// same rules as the command line's; calling it twice changes nothing.
func (c *Config) Check() error {
	if c.Takeover && c.TakeoverTimeout <= 0 {
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
	if c.UDP == "" && c.TCP == "" && c.Unix == "" && c.TLS == "" && c.RELP.Addr == "" {
		if !c.Journal.On && c.DovecotPolicy.Addr == "" && !c.Fleet.Follows() {
			return errors.New("-udp, -tcp, -tls, -relp and -unix are all empty, -journal is off and no fleet is followed (-nats-url): nothing to read logins from")
		}
		if c.Takeover {
			return errors.New("-takeover replaces a running relaygate's listeners, and none is set (with -journal alone no takeover is needed: the journal keeps what is logged while relaygate restarts)")
		}
	}
	if c.Journal.Dir != "" && !c.Journal.On {
		return errors.New("-journal-dir is only used with -journal")
	}
	if err := c.RELP.check(c.TLSCert, c.TLSKey); err != nil {
		return err
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
	switch {
	case c.UnixMode == 0:
		c.UnixMode = receiver.DefaultUnixMode
	case c.UnixMode&^0o777 != 0:
		return fmt.Errorf("-unix-mode %04o: want permission bits from 0001 to 0777, such as 0660 or 0600", c.UnixMode)
	}
	switch c.Mynetworks {
	case "auto", "none":
	default:
		if _, err := postfix.ParsePrefixes(c.Mynetworks); err != nil {
			return fmt.Errorf("-mynetworks: %w (want auto, none, or CIDRs)", err)
		}
	}
	if c.PostfixConfig != "" && c.Mynetworks != "auto" {
		return errors.New("-postfix-config is only used with -mynetworks auto")
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
	c.Fleet.StatePath, c.Fleet.Grace = c.StatePath, c.Grace
	if err := c.Fleet.Check(); err != nil {
		return err
	}
	return c.Outputs.Check(c.MapPath, c.StatePath)
}
