package receiver

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Config says where to listen and whom to hear.
type Config struct {
	UDP  string // "host:port"; empty disables
	TCP  string // "host:port"; empty disables
	TLS  string // "host:port" for syslog over TLS (RFC 5425); empty disables
	Unix string // datagram socket path; empty disables

	// TLSCert and TLSKey are the PEM files of the TLS listener's certificate
	// (with any intermediates after it) and its private key; both are
	// required when TLS is set.
	TLSCert, TLSKey string
	// TLSClientCA is a PEM bundle of CA certificates. When set, a TLS client
	// must present a certificate signed by one of them, or it is refused at
	// the handshake (rsyslog: StreamDriverMode="1" with a client certificate
	// configured; syslog-ng: tls(cert-file() key-file())). When empty, any
	// client that can reach the listener and passes Allow may send.
	TLSClientCA string

	// Allow lists the networks UDP, TCP and TLS senders must come from. The
	// unix socket is guarded by its file permissions instead.
	Allow []netip.Prefix

	// AllowHosts, when not empty, lists the syslog HOSTNAME values accepted
	// (compared case-insensitively and exactly: "mx1" does not match
	// "mx1.example.org"); a message with any other HOSTNAME, or none, is
	// dropped, on every transport. (For a well-formed RFC 3164 line without
	// a HOSTNAME, the form local daemons write to a unix socket, go-syslog
	// reports relaygate's own host name.)
	//
	// This only keeps out the logs of misconfigured senders (a log host
	// forwarding everything it collects). It is not authentication:
	// HOSTNAME is whatever text the sender chose to write. Allow, the unix
	// socket's permissions and TLSClientCA decide who may send.
	AllowHosts []string

	// OriginFrom lists the senders trusted to add an origin element (the
	// writer's kernel credentials, in STRUCTURED-DATA) to their messages;
	// OriginFromTLS trusts every TLS sender with a certificate verified by
	// TLSClientCA. OriginFromUnix lists the uids whose datagrams on the
	// unix socket are trusted with one: the kernel tells the receiver each
	// datagram's sender (SCM_CREDENTIALS), which no local user can forge,
	// so rsyslog running as root can vouch for what it forwards there
	// while a local user writing to the same socket cannot. From anyone
	// else an origin element is not believed and the message says so
	// (origin.Untrusted).
	OriginFrom     []netip.Prefix
	OriginFromTLS  bool
	OriginFromUnix []uint32
	// OriginSDID is the origin element's SD-ID; origin.DefaultSDID if "".
	OriginSDID string

	// Wanted, when set, says whether any parser handles a program tag.
	// Messages of other programs — nearly all of a busy host's log — are
	// counted and dropped before any string is made or anything queued. It
	// is called from every reader goroutine and must be safe for that.
	Wanted func(program []byte) bool

	MaxConns int // concurrent TCP and TLS connections; DefaultMaxConns if 0
	// MaxConnsPerHost bounds the TCP and TLS connections, handshakes in
	// progress included, that one sender address may hold at once, so a
	// single host (a sender that reconnects without closing, or a
	// compromised one) can't take every MaxConns slot from the others. It
	// is checked at accept, before any byte is read or any TLS work done.
	// DefaultMaxConnsPerHost(MaxConns) if 0; it may not exceed MaxConns.
	MaxConnsPerHost int

	// UnixMode is the permission of the unix socket (only the 0777 bits);
	// DefaultUnixMode if 0. UnixGroup is the group that owns it, a name or
	// a numeric gid; empty is relaygate's own effective group. The socket
	// is created in a private directory beside Unix, given its group and
	// mode there, and then renamed into place, so it is never reachable
	// with wider permissions than these, whatever the umask.
	UnixMode  os.FileMode
	UnixGroup string

	// Takeover binds UDP, TCP and TLS into the SO_REUSEPORT group of the
	// relaygate already listening there (any relaygate's listeners accept
	// a later one of the same user beside them), instead of failing with
	// "address already in use"; Steer then sends new traffic here. Without
	// it every bind is exclusive: a port anyone holds is an error.
	Takeover bool

	UDPReadBuf  int           // receive buffer bytes of the UDP and unix sockets (see SetReadBuffer); DefaultUDPReadBuffer if 0
	IdleTimeout time.Duration // TCP and TLS connections idle this long are closed; 0 = never

	Now    func() time.Time
	Logger zerolog.Logger
	Stats  *Stats

	// Limits no flag sets: only tests change them, to reach them quickly.
	maxMessage int // bytes, without trailing CR/LF/NUL; DefaultMaxMessage if 0
	// tlsHandshakeTimeout bounds the TLS handshake, so a client that
	// connects and stays silent can't hold a connection slot;
	// defaultTLSHandshakeTimeout if 0.
	tlsHandshakeTimeout time.Duration
}

// DefaultMaxMessage is the largest message accepted on any transport. It
// matches the largest UDP datagram, so a message never depends on the
// transport that carried it.
//
// On every transport a message's size is measured without the trailing CR,
// LF or NUL a sender may append (at most two such bytes beyond the limit are
// tolerated), so the same message is accepted or refused alike over UDP, the
// unix socket, TCP and TLS, whatever the framing.
const DefaultMaxMessage = 64 * 1024

// DefaultUDPReadBuffer is large enough to absorb a burst of a busy log host
// while the parser catches up: about 20,000 typical datagrams, 200 ms at
// 100,000 messages a second (Linux lets a socket hold twice the size asked,
// and charges each small datagram about 830 bytes of it on loopback, not its
// length).
const DefaultUDPReadBuffer = 8 << 20

// DefaultMaxConns bounds the TCP and TLS connections open at once, so a
// flood of connections can't use up relaygate's file descriptors. A log
// setup needs one connection per forwarding host.
const DefaultMaxConns = 256

// DefaultMaxConnsPerHost is the per-sender share of maxConns: an eighth,
// at least 2 and at most 16 (never more than maxConns). A forwarding host
// needs one connection per forwarding action (an rsyslog action, a
// syslog-ng destination), and one more while a predecessor it lost without
// a FIN waits for TCP keepalive to end it; 16 leaves room for several
// actions, and at the default -max-conns it takes 16 different sender
// addresses to fill every slot.
func DefaultMaxConnsPerHost(maxConns int) int {
	return min(maxConns, max(2, min(16, maxConns/8)))
}

// DefaultUnixMode lets relaygate's user and group write to the unix
// socket, and nobody else.
const DefaultUnixMode os.FileMode = 0o660

// defaultTLSHandshakeTimeout is generous for any real client.
const defaultTLSHandshakeTimeout = 10 * time.Second

// withDefaults fills in every zero field and refuses combinations that
// can't work, before anything is bound or read. Errors name the flags,
// since a misconfigured daemon is the only way to reach them.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.maxMessage <= 0 {
		cfg.maxMessage = DefaultMaxMessage
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxConnsPerHost <= 0 {
		cfg.MaxConnsPerHost = DefaultMaxConnsPerHost(cfg.MaxConns)
	}
	if cfg.MaxConnsPerHost > cfg.MaxConns {
		return cfg, fmt.Errorf("-max-conns-per-host %d: more than -max-conns %d", cfg.MaxConnsPerHost, cfg.MaxConns)
	}
	if cfg.UnixMode == 0 {
		cfg.UnixMode = DefaultUnixMode
	}
	if cfg.UnixMode&^os.ModePerm != 0 {
		return cfg, fmt.Errorf("-unix-mode %#o: only permission bits (at most 0777)", uint32(cfg.UnixMode))
	}
	if cfg.tlsHandshakeTimeout <= 0 {
		cfg.tlsHandshakeTimeout = defaultTLSHandshakeTimeout
	}
	if cfg.UDPReadBuf <= 0 {
		cfg.UDPReadBuf = DefaultUDPReadBuffer
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Stats == nil {
		cfg.Stats = new(Stats)
	}
	if cfg.TLS == "" && (cfg.TLSCert != "" || cfg.TLSKey != "" || cfg.TLSClientCA != "") {
		return cfg, errors.New("-tls-cert, -tls-key and -tls-client-ca need -tls (the TLS listen address)")
	}
	if cfg.Unix == "" && cfg.UnixGroup != "" {
		return cfg, errors.New("-unix-group needs -unix (the socket path)")
	}
	// No listener at all is allowed: the daemon then reads only the
	// journal, and Serve waits for its context without reading anything.
	return cfg, nil
}

// hostSet is AllowHosts in lower case, for lookups; nil allows every
// HOSTNAME.
func hostSet(hosts []string) map[string]struct{} {
	var set map[string]struct{}
	for _, h := range hosts {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			if set == nil {
				set = make(map[string]struct{})
			}
			set[h] = struct{}{}
		}
	}
	return set
}
