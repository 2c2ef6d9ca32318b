package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/relaygate/relaygate/internal/origin"

	"github.com/relaygate/relaygate/internal/daemon"
	"github.com/relaygate/relaygate/internal/fleet"
	"github.com/relaygate/relaygate/internal/grants"
	"github.com/relaygate/relaygate/internal/outputs"
	"github.com/relaygate/relaygate/internal/postfix"
	"github.com/relaygate/relaygate/receiver"
)

// serveConfig is everything `relaygate serve` is told on its command line:
// the daemon's configuration and how to log.
type serveConfig struct {
	daemon.Config
	logLevel  string
	logFormat string
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
		c              serveConfig
		allow, exclude string
		allowHosts     string
		unixMode       string
		originMode     string
		originFrom     string
		fs             = flag.NewFlagSet("relaygate serve", flag.ContinueOnError)
	)
	fs.SetOutput(stderr)
	fs.StringVar(&c.UDP, "udp", defaultListen, "UDP `address` to receive syslog on; empty disables")
	fs.StringVar(&c.TCP, "tcp", defaultListen, "TCP `address` to receive syslog on (newline or octet-counted framing); empty disables")
	fs.StringVar(&c.Unix, "unix", "", "unix datagram socket `path` to receive syslog on; empty disables")
	fs.StringVar(&unixMode, "unix-mode", fmt.Sprintf("%04o", receiver.DefaultUnixMode), "octal permission `mode` of the -unix socket, set before anyone can reach it (the umask does not apply); whoever can write to the socket can grant relay")
	fs.StringVar(&c.UnixGroup, "unix-group", "", "`group` (name or gid) owning the -unix socket; default relaygate's own group. Must exist at startup")
	fs.StringVar(&c.TLS, "tls", "", "TCP `address` to receive syslog over TLS (RFC 5425) on; empty disables")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM `file` with the TLS server certificate (intermediates after it); required with -tls")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM `file` with the private key of -tls-cert; required with -tls")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", "", "PEM `file` of CA certificates; when set, TLS senders must present a client certificate signed by one of them")
	fs.StringVar(&c.RELP.Addr, "relp", "", "TCP `address` to receive rsyslog's RELP (omrelp) on, such as 0.0.0.0:2514: each message is answered once its login is in the state file, synced, so rsyslog sends again what a crash lost (docs/RELP.md); -allow, -max-conns and -max-conns-per-host apply; empty disables")
	fs.BoolVar(&c.RELP.TLS, "relp-tls", false, "-relp over TLS (omrelp tls=\"on\"), with -tls-cert, -tls-key and, to require client certificates, -tls-client-ca")
	fs.IntVar(&c.UDPReadBuf, "udp-rcvbuf", receiver.DefaultUDPReadBuffer, "receive buffer `bytes` of the UDP and unix sockets, where datagrams wait while relaygate is busy; above net.core.rmem_max it needs root or CAP_NET_ADMIN (the granted size is logged)")
	fs.IntVar(&c.MaxConns, "max-conns", receiver.DefaultMaxConns, "most TCP and TLS `connections` open at once; more are closed on accept and counted")
	fs.IntVar(&c.MaxConnsPerHost, "max-conns-per-host", 0, "most TCP and TLS `connections` one sender address may hold at once (TLS handshakes included), so one host can't take every -max-conns slot; more are closed on accept and counted. 0 = an eighth of -max-conns, at least 2, at most 16")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 0, "close TCP and TLS connections idle this long; 0 = never (the default: a sender that has not noticed the close loses its next line)")
	fs.StringVar(&allowHosts, "allow-hosts", "", "comma-separated syslog HOSTNAME `values` to accept (default all); a filter against misconfigured senders, not authentication")
	fs.StringVar(&c.MapPath, "map", defaultMap, "cdb map `file` to publish; Postfix names it without \".cdb\" (cdb:/path/pop-before-smtp)")
	fs.StringVar(&c.Outputs.TCPRules, "tcprules", "", "also publish the grants for qmail's tcpserver -x: a tcprules cdb `file`, each granted address with -tcprules-grant (docs/OTHER-MTAS.md)")
	fs.StringVar(&c.Outputs.TCPRulesStatic, "tcprules-static", "", "the site's own tcprules `file` (tcp.smtp): its rules follow the grants in -tcprules, and each grant gets the rule its address matches (a deny keeps it out) plus -tcprules-grant; re-read when it changes")
	fs.StringVar(&c.Outputs.TCPRulesGrant, "tcprules-grant", "", "tcprules `instructions` added to a granted address's own rule; must begin with allow (default "+outputs.DefaultTCPRulesGrant+")")
	fs.StringVar(&c.Outputs.SendmailMap, "sendmail-map", "", "also publish the grants for sendmail: a hash map `name` (NAME.db), built with makemap and renamed into place")
	fs.StringVar(&c.Outputs.OpenSMTPDTable, "opensmtpd-table", "", "also publish the grants for OpenSMTPD: a file: table `file` of granted addresses, then run -opensmtpd-update")
	fs.StringVar(&c.Outputs.OpenSMTPDUpdate, "opensmtpd-update", "", "`command` run after each -opensmtpd-table write, split on blanks (default "+outputs.DefaultOpenSMTPDUpdate+")")
	fs.StringVar(&c.Outputs.CourierSmtpaccess, "courier-smtpaccess", "", "also publish the grants for Courier's esmtpd: the access `file` couriertcpd -access reads (ACCESSFILE.dat, Debian /etc/courier/smtpaccess.dat), built with Courier's makedat and renamed into place, then -courier-restart")
	fs.StringVar(&c.Outputs.CourierStatic, "courier-smtpaccess-static", "", "the site's own Courier access rules, a `file` or directory as makesmtpaccess reads them (Debian /etc/courier/smtpaccess): written with the grants, each grant getting the rule its address matches (a deny keeps it out) plus RELAYCLIENT; re-read when they change")
	fs.StringVar(&c.Outputs.CourierRestart, "courier-restart", "", "`command` run after each -courier-smtpaccess write to make couriertcpd reopen the file (a SIGHUP), split on blanks (default "+outputs.DefaultCourierRestart+")")
	fs.StringVar(&c.StatePath, "state", "", "state `file` that keeps grants across restarts (default: the map's name with .state)")
	fs.DurationVar(&c.Grace, "grace", 30*time.Minute, "how long a login allows relaying")
	fs.DurationVar(&c.Flush, "flush", time.Second, "least `time` between two map publishes")
	fs.DurationVar(&c.MaxSession, "max-session", grants.DefaultMaxSession, "close a session whose logout was never logged after this `time`")
	fs.StringVar(&c.Parsers.Daemons, "daemons", "all", "comma-separated built-in `daemons` to recognise (all, none, dovecot, courier, …)")
	fs.StringVar(&c.Parsers.Rules, "rules", "", "YAML `file` of custom login/logout rules")
	fs.StringVar(&c.Parsers.DovecotFormat, "dovecot-log-format", "", "Dovecot's login_log_format_elements `format`, as doveconf prints it, when the site changed it (default: Dovecot's default); login lines are read by this grammar")
	fs.StringVar(&originMode, "origin", "verify", "`mode` of the origin check, for lines that say who wrote them (the journal; rsyslog's trusted properties in a "+origin.DefaultSDID+" element): verify (a line that carries its writer grants only if the writer is the mail daemon: root, a system account below UID_MIN, or what -origin-file pins), require (a line without a verified writer never grants), off")
	fs.StringVar(&c.Origin.File, "origin-file", "", "YAML `file` pinning who may write each daemon's login lines (uids, units, exes, comms) and uid_min; re-read on SIGHUP")
	fs.StringVar(&originFrom, "origin-from", "tls", "syslog senders trusted to add a "+origin.DefaultSDID+" element, comma-separated: `CIDRs`; tls for any sender with a client certificate verified by -tls-client-ca; unix for root writing to the -unix socket, unix:USER for another user (the kernel names each datagram's sender); from others the element is refused")
	fs.StringVar(&c.DovecotPolicy.Addr, "dovecot-policy", "", "HTTP `address` (host:port, or a port on 127.0.0.1) of the Dovecot auth policy endpoint (auth_policy_server_url = http://ADDRESS/): Dovecot reports each authentication, and a successful IMAP or POP3 one grants its client; empty disables (docs/DOVECOT-POLICY.md)")
	fs.StringVar(&c.DovecotPolicy.SecretFile, "dovecot-policy-secret-file", "", "`file` holding Dovecot's auth_policy_server_api_header value (Name:secret, or a secret sent as X-API-Key; no newline), which every request must carry; required off loopback and with -origin require")
	fs.BoolVar(&c.Journal.On, "journal", false, "follow the local systemd journal (journalctl) for the parsers' program tags; -udp and -tcp are then off unless given (a syslog listener beside the journal takes lines without a writer from any local user); every journal line carries its verified writer for -origin; resumes after <state>.journal-cursor (docs/JOURNAL.md)")
	fs.StringVar(&c.Journal.Dir, "journal-dir", "", "with -journal, read the journal files in this `directory` (journalctl --directory) instead of the system journal")
	fleet.AddFlags(fs, &c.Fleet) // -nats-*: docs/FLEET.md
	fs.StringVar(&allow, "allow", defaultAllow, "comma-separated `CIDRs` UDP/TCP/TLS/RELP syslog senders must come from")
	fs.StringVar(&exclude, "exclude", "", "comma-separated `CIDRs` never to grant")
	fs.StringVar(&c.ExcludeFile, "exclude-file", "", "`file` of CIDRs never to grant, one per line, # comments; re-read on SIGHUP")
	fs.IntVar(&c.MaxEntries, "max-entries", grants.DefaultMaxEntries, "most grants kept; when full the least recently logged-in `number` is evicted")
	fs.StringVar(&c.Mynetworks, "mynetworks", "auto", "networks never to grant because Postfix already trusts them: auto (ask postconf), none, or comma-separated CIDRs")
	fs.StringVar(&c.PostfixConfig, "postfix-config", "", "Postfix configuration `directory` for -mynetworks auto (postconf -c)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log `level`: debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log-format", "console", "log `format`: console or json")
	fs.StringVar(&c.Metrics, "metrics", "", "HTTP `address` serving Prometheus /metrics, /healthz and /grants (for relaygate status), e.g. 127.0.0.1:9725; empty disables")
	fs.BoolVar(&c.Takeover, "takeover", false, "replace the relaygate running on this -map without a moment of closed ports: bind beside it (its listeners admit this), receive, then stop it (SIGTERM) and wait for its lock before loading the state; no login is lost. Linux; same user; same -udp/-tcp/-tls/-relp addresses")
	fs.DurationVar(&c.TakeoverTimeout, "takeover-timeout", 30*time.Second, "with -takeover, how long to wait for the running relaygate to finish and exit")
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
	if c.Journal.On {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		if !given["udp"] {
			c.UDP = ""
		}
		if !given["tcp"] {
			c.TCP = ""
		}
	}
	var err error
	if c.Origin.Mode, err = origin.ParseMode(originMode); err != nil {
		return c, err
	}
	if c.Origin, err = daemon.ParseOriginFrom(c.Origin, originFrom); err != nil {
		return c, err
	}
	if c.Allow, err = postfix.ParsePrefixes(allow); err != nil {
		return c, fmt.Errorf("-allow: %w", err)
	}
	if c.Exclude, err = postfix.ParsePrefixes(exclude); err != nil {
		return c, fmt.Errorf("-exclude: %w", err)
	}
	mode, err := strconv.ParseUint(unixMode, 8, 32)
	if err != nil || mode == 0 || mode > 0o777 {
		return c, fmt.Errorf("-unix-mode %q: want octal permission bits from 0001 to 0777, such as 0660 or 0600", unixMode)
	}
	c.UnixMode = os.FileMode(mode)
	for _, h := range strings.Split(allowHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.AllowHosts = append(c.AllowHosts, h)
		}
	}
	if err := c.Config.Check(); err != nil {
		return c, err
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
