package daemon

import (
	"net/netip"
	"os"
	"time"

	"github.com/relaygate/relaygate/internal/fleet"
	"github.com/relaygate/relaygate/internal/origin"
	"github.com/relaygate/relaygate/internal/outputs"
)

// Config is everything `relaygate serve` is told on its command line,
// already checked: the fields are named after the flags they come from.
type Config struct {
	UDP, TCP, TLS, Unix string // listen addresses; "" disables
	TLSCert, TLSKey     string
	TLSClientCA         string
	UnixMode            os.FileMode
	UnixGroup           string
	Allow               []netip.Prefix
	AllowHosts          []string
	MaxConns            int
	MaxConnsPerHost     int
	IdleTimeout         time.Duration
	UDPReadBuf          int  // receive buffer of the UDP and unix sockets, bytes
	Takeover            bool // replace the relaygate running on this map without closing its ports
	TakeoverTimeout     time.Duration

	Origin        OriginConfig
	DovecotPolicy DovecotPolicyConfig // -dovecot-policy: Dovecot reports its authentications over HTTP
	Journal       JournalConfig       // -journal: follow the systemd journal
	RELP          RELPConfig          // -relp: rsyslog's RELP, each message answered once its login is durable
	Fleet         fleet.Config        // -nats-*: publish to and follow a fleet of relaygates (docs/FLEET.md)
	Parsers       ParserConfig
	Grace         time.Duration
	MaxSession    time.Duration
	MaxEntries    int
	Exclude       []netip.Prefix
	ExcludeFile   string // re-read on Reload
	Mynetworks    string // auto (ask postconf, re-asked on Reload), none, or CIDRs
	PostfixConfig string // postconf -c for -mynetworks auto

	MapPath   string         // with .cdb
	Outputs   outputs.Config // -tcprules, -sendmail-map, -opensmtpd-table: the grants for other MTAs
	StatePath string
	Flush     time.Duration
	Metrics   string // HTTP address for /metrics, /healthz and /grants; "" disables
	Version   string // relaygate_build_info's label
}

// ParserConfig selects the parsers the daemon and `relaygate parse` use.
type ParserConfig struct {
	Daemons string // comma-separated built-in names, "all" or "none"
	Rules   string // YAML rules file, optional
	// DovecotFormat is the site's login_log_format_elements; "" takes the
	// rules file's dovecot_log_format, else Dovecot's default.
	DovecotFormat string
}

// OriginConfig is how much a grant depends on who wrote its line: -origin,
// -origin-file and -origin-from.
type OriginConfig struct {
	Mode origin.Mode
	// File holds per-daemon pins and uid_min; re-read on Reload. "" pins
	// nothing.
	File string
	// From lists the syslog senders trusted to add an origin element;
	// FromTLS trusts every sender with a verified client certificate;
	// FromUnix the uids whose datagrams on the -unix socket may carry one
	// (the kernel names each datagram's sender).
	From     []netip.Prefix
	FromTLS  bool
	FromUnix []uint32
	// LoginDefs is where UID_MIN is read when File does not set uid_min;
	// origin.LoginDefs if "".
	LoginDefs string
}
