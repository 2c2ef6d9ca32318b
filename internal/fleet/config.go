package fleet

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// Config is a relaygate's place in a fleet: the -nats-* flags, and what
// the daemon adds (StatePath, Grace).
type Config struct {
	// URLs is -nats-url: comma-separated NATS server URLs
	// (nats://host:4222, tls://host:4222, with user:password@ if the
	// server wants them). Empty: no fleet.
	URLs string
	// Creds is a NATS credentials file (a user JWT and its nkey seed).
	Creds string
	// CA, Cert and Key are PEM files: the CA that signed the servers'
	// certificates, and this relaygate's client certificate and key.
	// Any of them turns TLS on.
	CA, Cert, Key string
	// Stream is the JetStream stream's name; Subject the prefix of its
	// subjects: this relaygate publishes on Subject.Name and follows
	// Subject.>.
	Stream, Subject string
	// Name is this relaygate's subject token (default: the host name).
	Name string
	// Mode is both (publish what this relaygate accepts and follow the
	// rest), follow, or publish.
	Mode string
	// CatchUp is the longest a start waits for the fleet's active grants
	// before publishing the map.
	CatchUp time.Duration
	// OutboxMax bounds the events waiting to be published.
	OutboxMax int

	// Filled by the daemon.
	StatePath string        // the outbox and the cursor are kept beside it
	Grace     time.Duration // the catch-up window is derived from it

	ackTimeout time.Duration // how long a publish waits for its PubAck; tests shorten it
	ackWaitMin time.Duration // how long a batch first waits for its PubAcks (minAckWait); tests shorten it
}

// Defaults of the flags.
const (
	DefaultStream    = "RELAYGATE"
	DefaultSubject   = "relaygate.grants"
	DefaultCatchUp   = 10 * time.Second
	DefaultOutboxMax = 100000
)

// File suffixes beside the state file.
const (
	OutboxSuffix = ".fleet-outbox"
	CursorSuffix = ".fleet-cursor"
)

// AddFlags defines the -nats-* flags of `relaygate serve` on fs.
func AddFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.URLs, "nats-url", "", "join a fleet of relaygates through NATS JetStream: comma-separated server `URLs` (nats://host:4222, tls://host:4222); every login this relaygate accepts is published and every other relaygate's applied here (docs/FLEET.md); empty disables")
	fs.StringVar(&c.Creds, "nats-creds", "", "NATS credentials `file` (user JWT and nkey seed) for -nats-url")
	fs.StringVar(&c.CA, "nats-ca", "", "PEM `file` of the CA certificates that sign the NATS servers' certificates; turns TLS on")
	fs.StringVar(&c.Cert, "nats-cert", "", "PEM client certificate `file` presented to the NATS servers (with -nats-key)")
	fs.StringVar(&c.Key, "nats-key", "", "PEM private key `file` of -nats-cert")
	fs.StringVar(&c.Stream, "nats-stream", DefaultStream, "JetStream stream `name` holding the fleet's grant events (created by the first publishing relaygate if missing)")
	fs.StringVar(&c.Subject, "nats-subject", DefaultSubject, "subject `prefix` of the fleet's events: each relaygate publishes on PREFIX.NAME and follows PREFIX.>")
	fs.StringVar(&c.Name, "nats-name", "", "this relaygate's `name` in the fleet, the last token of its subject (default: the host name); the NATS permissions of its user should allow publishing on that subject only")
	fs.StringVar(&c.Mode, "nats-mode", "both", "`mode` in the fleet: both (publish the logins this relaygate accepts and apply the others'), follow (apply only), publish (publish only)")
	fs.DurationVar(&c.CatchUp, "nats-catchup", DefaultCatchUp, "at start, wait at most this `time` for the fleet's active grants before publishing the map")
	fs.IntVar(&c.OutboxMax, "nats-outbox-max", DefaultOutboxMax, "most `events` waiting in <state>.fleet-outbox for the stream while it cannot be reached; more are dropped (they still grant here) and counted")
}

// On reports whether the relaygate joins a fleet.
func (c *Config) On() bool { return c.URLs != "" }

// Publishes reports whether this relaygate publishes its logins.
func (c *Config) Publishes() bool { return c.On() && c.Mode != "follow" }

// Follows reports whether this relaygate applies the fleet's events.
func (c *Config) Follows() bool { return c.On() && c.Mode != "publish" }

// Window is how far back a new relaygate replays the stream: every event
// within it may still grant (a login, or the refresh of an open session,
// at most Grace ago), plus a minute for clocks that differ.
func (c *Config) Window() time.Duration { return c.Grace + time.Minute }

// MaxAge is the age limit of a stream a relaygate creates: twice the
// catch-up window, at least an hour.
func (c *Config) MaxAge() time.Duration { return max(2*c.Window(), time.Hour) }

// RefreshEvery is how often the holder of an open session says so: often
// enough that a follower never lets it lapse (a quarter of grace), at
// least every 10 s, at most every 5 minutes.
func RefreshEvery(grace time.Duration) time.Duration {
	return min(max(grace/4, 10*time.Second), 5*time.Minute)
}

var (
	tokenRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	subjectRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
)

// Check refuses what cannot work and fills in the defaults (the name).
// Its messages name the flags.
func (c *Config) Check() error {
	if !c.On() {
		for _, f := range [...]struct{ flag, v string }{{"-nats-creds", c.Creds}, {"-nats-ca", c.CA}, {"-nats-cert", c.Cert}, {"-nats-key", c.Key}, {"-nats-name", c.Name}} {
			if f.v != "" {
				return fmt.Errorf("%s is only used with -nats-url", f.flag)
			}
		}
		return nil
	}
	if _, err := c.ServerURLs(); err != nil {
		return err
	}
	switch c.Mode {
	case "both", "follow", "publish":
	default:
		return fmt.Errorf("-nats-mode %q: want both, follow or publish", c.Mode)
	}
	if !tokenRE.MatchString(c.Stream) {
		return fmt.Errorf("-nats-stream %q: want letters, digits, - and _ (at most 64)", c.Stream)
	}
	if !subjectRE.MatchString(c.Subject) || len(c.Subject) > 200 {
		return fmt.Errorf("-nats-subject %q: want dot-separated tokens of letters, digits, - and _, without wildcards", c.Subject)
	}
	if c.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("-nats-name: the host name is unknown (%v): give a name", err)
		}
		c.Name = HostToken(h)
	}
	if !tokenRE.MatchString(c.Name) {
		return fmt.Errorf("-nats-name %q: want letters, digits, - and _ (at most 64): it is a subject token", c.Name)
	}
	if (c.Cert == "") != (c.Key == "") {
		return errors.New("-nats-cert and -nats-key go together")
	}
	for _, f := range [...]struct{ flag, path string }{{"-nats-creds", c.Creds}, {"-nats-ca", c.CA}, {"-nats-cert", c.Cert}, {"-nats-key", c.Key}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		}
	}
	if c.CatchUp < 0 {
		return fmt.Errorf("-nats-catchup %s: must not be negative", c.CatchUp)
	}
	if c.OutboxMax <= 0 {
		return fmt.Errorf("-nats-outbox-max %d: must be positive", c.OutboxMax)
	}
	return nil
}

// ServerURLs splits and checks -nats-url.
func (c *Config) ServerURLs() ([]string, error) {
	var out []string
	for _, s := range strings.Split(c.URLs, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("-nats-url %q: want nats://host:port or tls://host:port", redact(s))
		}
		switch u.Scheme {
		case "nats", "tls":
		default:
			return nil, fmt.Errorf("-nats-url %q: scheme %q: want nats:// or tls://", redact(s), u.Scheme)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("-nats-url: no URL")
	}
	return out, nil
}

// TLS reports whether the connection uses TLS.
func (c *Config) TLS() bool {
	return c.CA != "" || c.Cert != "" || strings.Contains(c.URLs, "tls://")
}

// HostToken turns a host name into a subject token: its first label,
// with every character outside [A-Za-z0-9_-] replaced by _.
func HostToken(h string) string {
	if i := strings.IndexByte(h, '.'); i > 0 {
		h = h[:i]
	}
	b := []byte(h)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// redact hides the credentials in a URL, for log lines, errors and
// status: a password, and a token (nats://TOKEN@host: to NATS a user
// name without a password is a token, as secret as a password). What
// does not parse as a URL loses everything before its last @.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		i := strings.LastIndexByte(s, '@')
		if i < 0 {
			return s
		}
		scheme := ""
		if j := strings.Index(s, "://"); j >= 0 && j < i {
			scheme = s[:j+3]
		}
		return scheme + "xxx" + s[i:]
	}
	if u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxx")
	} else {
		u.User = url.User("xxx")
	}
	return u.String()
}
