package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/relaygate/relaygate/receiver"
)

// serveConfig is everything `relaygate serve` is told on its command line.
type serveConfig struct {
	udp, tcp, unix  string
	tls             string
	tlsCert         string
	tlsKey          string
	tlsClientCA     string
	maxConns        int
	maxConnsPerHost int
	unixMode        os.FileMode
	unixGroup       string
	udpReadBuf      int // receive buffer of the UDP and unix sockets, bytes
	idleTimeout     time.Duration
	allowHosts      []string
	mapPath         string
	statePath       string
	grace           time.Duration
	maxSession      time.Duration
	maxEntries      int
	excludeFile     string
	parsers         parserFlags
	flush           time.Duration
	allow           []netip.Prefix
	exclude         []netip.Prefix
	mynetworks      string
	postfixConfig   string
	logLevel        string
	logFormat       string
	stateFromMapDir bool          // statePath was derived from mapPath
	metrics         string        // HTTP address for /metrics, /healthz and /grants; empty disables
	takeover        bool          // replace the relaygate running on this map without closing its ports
	takeoverTimeout time.Duration // how long a takeover waits for its predecessor to exit
}

const (
	defaultListen = "127.0.0.1:5514"
	defaultMap    = "./pop-before-smtp.cdb"
	defaultAllow  = "127.0.0.0/8,::1"
)

func parseServeFlags(args []string, stderr io.Writer) (serveConfig, error) {
	return parseServeFlagsVisit(args, stderr, nil)
}

// parseServeFlagsVisit is parseServeFlags; a non-nil visit is handed the
// complete flag set instead of parsing, so the man page is generated from
// the very definitions serve uses.
func parseServeFlagsVisit(args []string, stderr io.Writer, visit func(*flag.FlagSet)) (serveConfig, error) {
	var (
		c                    serveConfig
		allow, exclude       string
		allowHosts           string
		unixMode             string
		fs                   = flag.NewFlagSet("relaygate serve", flag.ContinueOnError)
		graceFlag, flushFlag = 30 * time.Minute, time.Second
	)
	fs.SetOutput(stderr)
	fs.StringVar(&c.udp, "udp", defaultListen, "UDP `address` to receive syslog on; empty disables")
	fs.StringVar(&c.tcp, "tcp", defaultListen, "TCP `address` to receive syslog on (newline or octet-counted framing); empty disables")
	fs.StringVar(&c.unix, "unix", "", "unix datagram socket `path` to receive syslog on; empty disables")
	fs.StringVar(&unixMode, "unix-mode", "0660", "octal permission `mode` of the -unix socket, set before anyone can reach it (the umask does not apply); whoever can write to the socket can grant relay")
	fs.StringVar(&c.unixGroup, "unix-group", "", "`group` (name or gid) owning the -unix socket; default relaygate's own group. Must exist at startup")
	fs.StringVar(&c.tls, "tls", "", "TCP `address` to receive syslog over TLS (RFC 5425) on; empty disables")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM `file` with the TLS server certificate (intermediates after it); required with -tls")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM `file` with the private key of -tls-cert; required with -tls")
	fs.StringVar(&c.tlsClientCA, "tls-client-ca", "", "PEM `file` of CA certificates; when set, TLS senders must present a client certificate signed by one of them")
	fs.IntVar(&c.udpReadBuf, "udp-rcvbuf", receiver.DefaultUDPReadBuffer, "receive buffer `bytes` of the UDP and unix sockets, where datagrams wait while relaygate is busy; above net.core.rmem_max it needs root or CAP_NET_ADMIN (the granted size is logged)")
	fs.IntVar(&c.maxConns, "max-conns", 256, "most TCP and TLS `connections` open at once; more are closed on accept and counted")
	fs.IntVar(&c.maxConnsPerHost, "max-conns-per-host", 0, "most TCP and TLS `connections` one sender address may hold at once (TLS handshakes included), so one host can't take every -max-conns slot; more are closed on accept and counted. 0 = an eighth of -max-conns, at least 2, at most 16")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 0, "close TCP and TLS connections idle this long; 0 = never (the default: a sender that has not noticed the close loses its next line)")
	fs.StringVar(&allowHosts, "allow-hosts", "", "comma-separated syslog HOSTNAME `values` to accept (default all); a filter against misconfigured senders, not authentication")
	fs.StringVar(&c.mapPath, "map", defaultMap, "cdb map `file` to publish; Postfix names it without \".cdb\" (cdb:/path/pop-before-smtp)")
	fs.StringVar(&c.statePath, "state", "", "state `file` that keeps grants across restarts (default: the map's name with .state)")
	fs.DurationVar(&graceFlag, "grace", graceFlag, "how long a login allows relaying")
	fs.DurationVar(&flushFlag, "flush", flushFlag, "least `time` between two map publishes")
	fs.DurationVar(&c.maxSession, "max-session", 24*time.Hour, "close a session whose logout was never logged after this `time`")
	fs.StringVar(&c.parsers.daemons, "daemons", "all", "comma-separated built-in `daemons` to recognise (all, none, dovecot, courier, …)")
	fs.StringVar(&c.parsers.rules, "rules", "", "YAML `file` of custom login/logout rules")
	fs.StringVar(&c.parsers.dovecotFormat, "dovecot-log-format", "", "Dovecot's login_log_format_elements `format`, as doveconf prints it, when the site changed it (default: Dovecot's default); login lines are read by this grammar")
	fs.StringVar(&allow, "allow", defaultAllow, "comma-separated `CIDRs` UDP/TCP syslog senders must come from")
	fs.StringVar(&exclude, "exclude", "", "comma-separated `CIDRs` never to grant")
	fs.StringVar(&c.excludeFile, "exclude-file", "", "`file` of CIDRs never to grant, one per line, # comments; re-read on SIGHUP")
	fs.IntVar(&c.maxEntries, "max-entries", 100000, "most grants kept; when full the least recently logged-in `number` is evicted")
	fs.StringVar(&c.mynetworks, "mynetworks", "auto", "networks never to grant because Postfix already trusts them: auto (ask postconf), none, or comma-separated CIDRs")
	fs.StringVar(&c.postfixConfig, "postfix-config", "", "Postfix configuration `directory` for -mynetworks auto (postconf -c)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log `level`: debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log-format", "console", "log `format`: console or json")
	fs.StringVar(&c.metrics, "metrics", "", "HTTP `address` serving Prometheus /metrics, /healthz and /grants (for relaygate status), e.g. 127.0.0.1:9725; empty disables")
	fs.BoolVar(&c.takeover, "takeover", false, "replace the relaygate running on this -map without a moment of closed ports: bind beside it (its listeners admit this), receive, then stop it (SIGTERM) and wait for its lock before loading the state; no login is lost. Linux; same user; same -udp/-tcp/-tls addresses")
	fs.DurationVar(&c.takeoverTimeout, "takeover-timeout", 30*time.Second, "with -takeover, how long to wait for the running relaygate to finish and exit")
	if visit != nil {
		visit(fs)
		return c, errHelp
	}
	if err := parseFlags(fs, args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (flags go before arguments; see -h)", fs.Arg(0))
	}
	c.grace, c.flush = graceFlag, flushFlag
	if c.takeoverTimeout <= 0 {
		return c, fmt.Errorf("-takeover-timeout %s: must be positive", c.takeoverTimeout)
	}
	if c.grace <= 0 {
		return c, fmt.Errorf("-grace %s: must be positive", c.grace)
	}
	if c.maxEntries <= 0 {
		return c, fmt.Errorf("-max-entries %d: must be positive", c.maxEntries)
	}
	if c.maxSession <= 0 {
		return c, fmt.Errorf("-max-session %s: must be positive", c.maxSession)
	}
	if c.flush <= 0 {
		return c, fmt.Errorf("-flush %s: must be positive", c.flush)
	}
	var err error
	if c.allow, err = parsePrefixes(allow); err != nil {
		return c, fmt.Errorf("-allow: %w", err)
	}
	if c.exclude, err = parsePrefixes(exclude); err != nil {
		return c, fmt.Errorf("-exclude: %w", err)
	}
	switch c.mynetworks {
	case "auto", "none":
	default:
		if _, err := parsePrefixes(c.mynetworks); err != nil {
			return c, fmt.Errorf("-mynetworks: %w (want auto, none, or CIDRs)", err)
		}
	}
	if c.postfixConfig != "" && c.mynetworks != "auto" {
		return c, errors.New("-postfix-config is only used with -mynetworks auto")
	}
	if c.udp == "" && c.tcp == "" && c.unix == "" && c.tls == "" {
		return c, errors.New("-udp, -tcp, -tls and -unix are all empty: nothing to listen on")
	}
	if c.udpReadBuf <= 0 {
		return c, fmt.Errorf("-udp-rcvbuf %d: must be positive", c.udpReadBuf)
	}
	if c.maxConns <= 0 {
		return c, fmt.Errorf("-max-conns %d: must be positive", c.maxConns)
	}
	switch {
	case c.maxConnsPerHost < 0:
		return c, fmt.Errorf("-max-conns-per-host %d: must not be negative (0 chooses from -max-conns)", c.maxConnsPerHost)
	case c.maxConnsPerHost > c.maxConns:
		return c, fmt.Errorf("-max-conns-per-host %d: more than -max-conns %d", c.maxConnsPerHost, c.maxConns)
	case c.maxConnsPerHost == 0:
		c.maxConnsPerHost = receiver.DefaultMaxConnsPerHost(c.maxConns)
	}
	mode, err := strconv.ParseUint(unixMode, 8, 32)
	if err != nil || mode == 0 || mode > 0o777 {
		return c, fmt.Errorf("-unix-mode %q: want octal permission bits from 0001 to 0777, such as 0660 or 0600", unixMode)
	}
	c.unixMode = os.FileMode(mode)
	if c.unixGroup != "" && c.unix == "" {
		return c, errors.New("-unix-group is only used with -unix")
	}
	if c.idleTimeout < 0 {
		return c, fmt.Errorf("-idle-timeout %s: must not be negative", c.idleTimeout)
	}
	for _, h := range strings.Split(allowHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.allowHosts = append(c.allowHosts, h)
		}
	}
	if c.mapPath == "" {
		return c, errors.New("-map: empty path")
	}
	if c.metrics != "" {
		if _, _, err := net.SplitHostPort(c.metrics); err != nil {
			return c, fmt.Errorf("-metrics %q: want host:port, such as 127.0.0.1:9725: %w", c.metrics, err)
		}
	}
	if !strings.HasSuffix(c.mapPath, ".cdb") {
		// Postfix opens cdb:NAME as NAME.cdb, so that is the file to write.
		c.mapPath += ".cdb"
	}
	if c.statePath == "" {
		c.statePath = strings.TrimSuffix(c.mapPath, ".cdb") + ".state"
		c.stateFromMapDir = true
	}
	switch c.logLevel {
	case "debug", "info", "warn", "error":
	default:
		return c, fmt.Errorf("-log-level %q: want debug, info, warn or error", c.logLevel)
	}
	switch c.logFormat {
	case "console", "json":
	default:
		return c, fmt.Errorf("-log-format %q: want console or json", c.logFormat)
	}
	return c, nil
}

// parsePrefixes reads "192.0.2.0/24, 2001:db8::/32, 198.51.100.7": a bare
// address means just that host. Postfix-style "[::1]/128" is accepted too.
func parsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		p, err := parsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	clean := s
	if strings.HasPrefix(clean, "[") {
		if end := strings.IndexByte(clean, ']'); end > 0 {
			clean = clean[1:end] + clean[end+1:]
		}
	}
	if strings.Contains(clean, "/") {
		p, err := netip.ParsePrefix(clean)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			// [::ffff:127.0.0.0]/104 means 127.0.0.0/8; addresses are
			// unmapped before they are compared.
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(clean)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// readExcludeFile reads one CIDR (or address) per line; "#" starts a comment.
// The error names every bad line (up to maxBadLines), not just the first.
func readExcludeFile(path string) ([]netip.Prefix, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	var bad []string
	badLines := 0
	for i, line := range strings.Split(string(data), "\n") {
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		p, err := parsePrefix(line)
		if err != nil && len(line) > 80 {
			err = fmt.Errorf("%q… is not an address or CIDR", line[:80])
		}
		if err != nil {
			if badLines++; badLines <= maxBadLines {
				bad = append(bad, fmt.Sprintf("%s:%d: %v", path, i+1, err))
			}
			continue
		}
		out = append(out, p)
	}
	if badLines > maxBadLines {
		bad = append(bad, fmt.Sprintf("and %d more bad lines", badLines-maxBadLines))
	}
	if len(bad) > 0 {
		return nil, errors.New(strings.Join(bad, "; "))
	}
	return out, nil
}

// maxBadLines bounds the lines one error names, so a wrong file (a log
// given as -exclude-file) makes a readable error, not a megabyte.
const maxBadLines = 10
