package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/relaygate/relaygate/internal/grants"
	"github.com/relaygate/relaygate/internal/metric"
	"github.com/relaygate/relaygate/internal/origin"
	"github.com/relaygate/relaygate/receiver/dovecotpolicy"
)

// DovecotPolicyConfig is the Dovecot auth policy endpoint:
// -dovecot-policy and -dovecot-policy-secret-file.
type DovecotPolicyConfig struct {
	// Addr is host:port to serve on; a bare port means 127.0.0.1:port;
	// "" disables the endpoint.
	Addr string
	// SecretFile holds auth_policy_server_api_header's value; every
	// request must carry it. Required when Addr is not loopback, and with
	// -origin require.
	SecretFile string
}

// policyQueue is how many reported logins may wait for the pipeline
// goroutine; policyWait how long a request waits for room before it is
// answered 503 (Dovecot gives up after 2 s, and logs it).
const (
	policyQueue = 1024
	policyWait  = 500 * time.Millisecond
)

// check is Config.Check's part for the endpoint: it fills in the default
// host and refuses what would let anyone but Dovecot grant.
func (c *DovecotPolicyConfig) check(mode origin.Mode) error {
	if c.Addr == "" {
		if c.SecretFile != "" {
			return errors.New("-dovecot-policy-secret-file is only used with -dovecot-policy")
		}
		return nil
	}
	if _, err := strconv.ParseUint(c.Addr, 10, 16); err == nil {
		c.Addr = net.JoinHostPort("127.0.0.1", c.Addr)
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("-dovecot-policy %q: want host:port or a port (on 127.0.0.1), such as 127.0.0.1:9726: %w", c.Addr, err)
	}
	if c.SecretFile != "" {
		return nil
	}
	if !loopbackHost(host) {
		return fmt.Errorf("-dovecot-policy %s is not a loopback address: -dovecot-policy-secret-file is required (whoever reaches the endpoint can grant relay)", c.Addr)
	}
	if mode == origin.ModeRequire {
		return errors.New("-origin require: -dovecot-policy needs -dovecot-policy-secret-file (every local user can reach a loopback port and report a login)")
	}
	return nil
}

// loopbackHost: a loopback IP address or "localhost". An empty host is
// every address.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// policyEndpoint is the running endpoint; the zero value (no
// -dovecot-policy) does nothing.
type policyEndpoint struct {
	srv     *dovecotpolicy.Server
	handler *dovecotpolicy.Handler
}

// startDovecotPolicy binds and serves -dovecot-policy. Its logins go to
// d.policyLogins, which the pipeline goroutine reads.
func (d *Daemon) startDovecotPolicy() (*policyEndpoint, error) {
	cfg := d.cfg.DovecotPolicy
	if cfg.Addr == "" {
		return &policyEndpoint{}, nil
	}
	var secret *dovecotpolicy.Secret
	if cfg.SecretFile != "" {
		s, err := dovecotpolicy.LoadSecret(cfg.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("-dovecot-policy-secret-file: %w", err)
		}
		secret = &s
		if s.WorldReadable {
			d.log.Warn().Str("file", cfg.SecretFile).
				Msg("-dovecot-policy-secret-file is readable by every local user, who can then report logins; chmod o-r it")
		}
	}
	h := dovecotpolicy.NewHandler(dovecotpolicy.Config{
		Secret:  secret,
		Deliver: d.deliverPolicyLogin,
		Now:     d.clock.Now,
		Logger:  d.log.With().Str("component", "dovecot-policy").Logger(),
	})
	srv, err := dovecotpolicy.Listen(cfg.Addr, h)
	if err != nil {
		return nil, fmt.Errorf("-dovecot-policy: %w", err)
	}
	srv.Serve(d.log)
	ev := d.log.Info().Str("dovecot_policy", srv.Addr().String()).Bool("secret", secret != nil)
	if secret != nil {
		ev = ev.Str("secret_header", secret.Header)
	}
	ev.Str("dovecot_url", "http://"+srv.Addr().String()+"/").
		Msg("Dovecot auth policy endpoint listening (auth_policy_server_url; successful IMAP/POP3 authentications grant)")
	if secret == nil {
		d.log.Warn().Str("dovecot_policy", srv.Addr().String()).
			Msg("-dovecot-policy without -dovecot-policy-secret-file: every local user can report a login and grant relay")
	} else if port, start, ok := dovecotpolicy.SquattablePort(srv.Addr()); ok {
		d.log.Warn().Str("dovecot_policy", srv.Addr().String()).Int("unprivileged_port_start", start).
			Msgf("-dovecot-policy port %d can be bound by any local user while relaygate is not listening (a restart, a crash, -takeover's gap): "+
				"Dovecot then sends that user its reports with the secret, which grants anything; use a port below %d (docs/DOVECOT-POLICY.md, \"Security\")", port, start)
	}
	return &policyEndpoint{srv: srv, handler: h}, nil
}

// deliverPolicyLogin hands a reported login to the pipeline goroutine,
// waiting at most policyWait for room.
func (d *Daemon) deliverPolicyLogin(l dovecotpolicy.Login) bool {
	select {
	case d.policyLogins <- l:
		return true
	default:
	}
	t := time.NewTimer(policyWait)
	defer t.Stop()
	select {
	case d.policyLogins <- l:
		return true
	case <-t.C:
		return false
	}
}

// policyEvent is the grant table's event for a reported login: a login
// without a session (a report says nothing of the logout, so the grant
// runs for -grace), by the daemon "dovecot-policy", the host being the
// Dovecot server that reported it. Exclusions, mynetworks and the table's
// limits apply as to every login.
func policyEvent(l dovecotpolicy.Login) grants.Event {
	return grants.Event{
		Kind:  grants.EventLogin,
		Grant: grants.Grant{Addr: l.Addr, User: l.User, Daemon: dovecotpolicy.Daemon, Host: l.Peer},
		At:    l.Received,
	}
}

// close stops the endpoint.
func (p *policyEndpoint) close() {
	if p.srv != nil {
		p.srv.Close()
	}
}

// Samples describes the endpoint's counters; none without -dovecot-policy.
func (p *policyEndpoint) Samples(yield func(metric.Sample)) {
	if p != nil && p.handler != nil {
		p.handler.Stats().Samples(yield)
	}
}

// DovecotPolicyAddr is the bound -dovecot-policy address, nil without it.
func (d *Daemon) DovecotPolicyAddr() net.Addr {
	if d.policy == nil || d.policy.srv == nil {
		return nil
	}
	return d.policy.srv.Addr()
}

// policyLogin is what the endpoint hands the pipeline goroutine.
type policyLogin = dovecotpolicy.Login
