// Package dovecotpolicy is relaygate's Dovecot auth policy endpoint
// (-dovecot-policy): Dovecot's auth process reports every authentication
// to it over HTTP (auth_policy_server_url, auth_policy_report_after_auth),
// and a successful IMAP or POP3 authentication becomes a Login for the
// grant table, with no log line to forge or parse.
//
// The protocol, as Dovecot 2.3 and 2.4 speak it (src/auth/auth-policy.c):
// a POST to auth_policy_server_url with "?command=allow" (the checks
// before and after authentication, auth_policy_check_before_auth and
// auth_policy_check_after_auth) or "?command=report" (after it,
// auth_policy_report_after_auth), Content-Type application/json, the
// header of auth_policy_server_api_header, and the body of Request.
// For allow Dovecot reads {"status":N,"msg":"…"} from a 2xx answer: 0
// continues, a negative status fails the authentication, a positive one
// delays it by that many seconds. For report it only looks at the HTTP
// status. An answer other than 2xx, a timeout
// (auth_policy_server_timeout_msecs, 2 s) or a refused connection is
// logged by Dovecot and the authentication goes on as if the answer were
// 0, unless auth_policy_reject_on_fail is set; reports are never queued or
// resent. relaygate answers every allow with status 0, so even with the
// checks on it never refuses or delays a login; with them off it is not in
// the login's path at all.
package dovecotpolicy

import (
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/parsers"
)

// Daemon is the daemon name of the grants this endpoint makes.
const Daemon = "dovecot-policy"

// MaxBody bounds a request body. Dovecot's is a few hundred bytes.
const MaxBody = 64 << 10

// Login is a successful IMAP or POP3 authentication Dovecot reported.
type Login struct {
	Addr     netip.Addr // the client, unmapped and grantable
	User     string
	Protocol string // imap or pop3
	Session  string // Dovecot's session id (not a session relaygate tracks)
	Peer     string // the address of the Dovecot server that reported it
	Received time.Time
}

// Config is what the handler is given.
type Config struct {
	// Secret, when set, must be in every request.
	Secret *Secret
	// Deliver hands a login on; false means it could not be taken (the
	// daemon is stopping or overloaded), and Dovecot is told so.
	Deliver func(Login) bool
	Now     func() time.Time // time.Now if nil
	Logger  zerolog.Logger
	Stats   *Stats // a private one if nil
}

// Handler is the endpoint's http.Handler.
type Handler struct {
	cfg Config

	mu         sync.Mutex // the refusal log's rate limit
	lastLog    time.Time
	suppressed int64
}

// NewHandler returns the handler of cfg.
func NewHandler(cfg Config) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Stats == nil {
		cfg.Stats = new(Stats)
	}
	return &Handler{cfg: cfg}
}

// Stats is the handler's counters.
func (h *Handler) Stats() *Stats { return h.cfg.Stats }

// grantedProtocols are the services whose authentication grants: the mail
// a client reads. Never submission or smtp (those already authenticate the
// relaying itself), managesieve ("sieve"), lmtp, doveadm, or any other.
var grantedProtocols = map[string]bool{"imap": true, "pop3": true}

// okBody is the answer Dovecot reads as "continue".
const okBody = `{"status":0,"msg":""}`

// ServeHTTP answers one request of Dovecot's auth process: 200 with
// okBody for every good request, granting or not, and an error status
// for a refused one (counted by its Result either way). Every answer
// closes the connection: a connection is then held only while a request
// is on it (Dovecot's HTTP client opens another for the next report, at
// the cost of a loopback connect), and the only connections held open are
// someone else's (see MaxConns).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	received := h.cfg.Now()
	res, status := h.serve(w, r, received)
	h.cfg.Stats.count(res)
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	w.Header().Set("Connection", "close")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if status == http.StatusOK {
		io.WriteString(w, okBody)
		return
	}
	// Status 0 even here: a Dovecot that (against the documentation)
	// checks with relaygate must not be told to refuse or delay.
	io.WriteString(w, `{"status":0,"msg":"relaygate: `+string(res)+`"}`)
}

// serve decides one request: the result it counts and the HTTP status.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, received time.Time) (Result, int) {
	peer := peerOf(r)
	if r.Method != http.MethodPost {
		return h.refused(ResultBadMethod, peer, http.StatusMethodNotAllowed, received)
	}
	if h.cfg.Secret != nil && !h.cfg.Secret.matches(r) {
		return h.refused(ResultBadSecret, peer, http.StatusForbidden, received)
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	command := q["command"]
	if err != nil || len(command) != 1 || (command[0] != "allow" && command[0] != "report") {
		return h.refused(ResultBadCommand, peer, http.StatusBadRequest, received)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		// Also what keeps a web page in a browser on this host from
		// posting a report: a cross-origin application/json POST needs a
		// preflight, which gets 405.
		return h.refused(ResultBadContentType, peer, http.StatusUnsupportedMediaType, received)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return h.refused(ResultTooLarge, peer, http.StatusRequestEntityTooLarge, received)
		}
		return h.refused(ResultBadJSON, peer, http.StatusBadRequest, received)
	}
	req, err := DecodeRequest(body)
	if err != nil {
		return h.refused(ResultBadJSON, peer, http.StatusBadRequest, received)
	}
	if command[0] == "allow" {
		return ResultAllow, http.StatusOK
	}
	if !req.HasSuccess {
		// Every report of Dovecot's carries it.
		return h.refused(ResultBadJSON, peer, http.StatusBadRequest, received)
	}
	if !req.Success || req.PolicyReject {
		return ResultAuthFailed, http.StatusOK
	}
	if !grantedProtocols[req.Protocol] {
		return ResultOtherProtocol, http.StatusOK
	}
	addr, ok := grantableAddr(req.Remote)
	if !ok {
		h.cfg.Logger.Debug().Str("peer", peer).Str("protocol", req.Protocol).Str("remote", req.Remote).
			Msg("Dovecot auth policy report: client address never granted")
		return ResultBadAddress, http.StatusOK
	}
	l := Login{Addr: addr, User: req.Login, Protocol: req.Protocol, Session: req.SessionID, Peer: peer, Received: received}
	if h.cfg.Deliver == nil || !h.cfg.Deliver(l) {
		return h.refused(ResultBusy, peer, http.StatusServiceUnavailable, received)
	}
	h.cfg.Logger.Debug().Str("peer", peer).Str("protocol", req.Protocol).Str("addr", addr.String()).Str("user", req.Login).
		Msg("Dovecot auth policy report: login handed to the grant table")
	return ResultGranted, http.StatusOK
}

// grantableAddr reads Dovecot's "remote": an IPv4 or IPv6 address as
// Dovecot prints it (no brackets, no port, no zone), IPv4-mapped IPv6
// unmapped, and only if relaygate's address rules allow granting it.
func grantableAddr(s string) (netip.Addr, bool) {
	if s == "" || strings.ContainsAny(s, "%[]") {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	a = a.Unmap()
	return a, parsers.Grantable(a)
}

// refusalLogEvery is the least time between two refusal log lines.
const refusalLogEvery = 10 * time.Second

// refused logs a refused request, rate-limited and without its content.
func (h *Handler) refused(res Result, peer string, status int, now time.Time) (Result, int) {
	h.mu.Lock()
	if !h.lastLog.IsZero() && now.Sub(h.lastLog) < refusalLogEvery && now.Sub(h.lastLog) >= 0 {
		h.suppressed++
		h.mu.Unlock()
		return res, status
	}
	suppressed := h.suppressed
	h.lastLog, h.suppressed = now, 0
	h.mu.Unlock()
	h.cfg.Logger.Info().Str("result", string(res)).Str("peer", peer).Int("status", status).
		Int64("suppressed_before", suppressed).Msg("Dovecot auth policy request refused")
	return res, status
}

func peerOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().String()
	}
	return host
}
