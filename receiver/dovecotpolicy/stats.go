package dovecotpolicy

import (
	"sync/atomic"

	"github.com/relaygate/relaygate/internal/metric"
)

// Result is what became of one request: the value of the result label of
// relaygate_dovecot_policy_requests_total.
type Result string

// Results. A report that does not grant (a failed authentication, another
// protocol, an address never granted) is answered 200: it is a good report.
const (
	ResultGranted        Result = "granted"          // a successful IMAP/POP3 authentication, handed to the grant table
	ResultAllow          Result = "allow"            // command=allow, answered {"status":0}
	ResultAuthFailed     Result = "auth_failed"      // report of a failed (or policy-refused) authentication
	ResultOtherProtocol  Result = "other_protocol"   // report for submission, smtp, sieve, lmtp, …
	ResultBadAddress     Result = "bad_address"      // remote missing, not an address, or never granted
	ResultBadMethod      Result = "bad_method"       // not POST: 405
	ResultBadSecret      Result = "bad_secret"       // the secret header missing, repeated or wrong: 403
	ResultBadCommand     Result = "bad_command"      // command is not exactly one of allow, report: 400
	ResultBadContentType Result = "bad_content_type" // not application/json: 415
	ResultTooLarge       Result = "too_large"        // body over MaxBody: 413
	ResultBadJSON        Result = "bad_json"         // body unreadable, not the JSON Dovecot sends: 400
	ResultBusy           Result = "busy"             // the login could not be handed on in time: 503
)

// Results lists every result, in the order they are exported.
var Results = [...]Result{
	ResultGranted, ResultAllow, ResultAuthFailed, ResultOtherProtocol, ResultBadAddress,
	ResultBadMethod, ResultBadSecret, ResultBadCommand, ResultBadContentType, ResultTooLarge, ResultBadJSON, ResultBusy,
}

// Stats counts requests by result, and the connections closed to make
// room (see MaxConns). The zero value is ready.
type Stats struct {
	counts  [len(Results)]atomic.Int64 // by index in Results
	evicted atomic.Int64
}

func (s *Stats) count(r Result) {
	for i, x := range Results {
		if x == r {
			s.counts[i].Add(1)
			return
		}
	}
}

// Count returns the requests counted with result r.
func (s *Stats) Count(r Result) int64 {
	for i, x := range Results {
		if x == r {
			return s.counts[i].Load()
		}
	}
	return 0
}

// Evicted is how many connections were closed to make room for newer
// ones.
func (s *Stats) Evicted() int64 { return s.evicted.Load() }

// Samples describes the counts, every result exported from 0.
func (s *Stats) Samples(yield func(metric.Sample)) {
	for i, r := range Results {
		yield(metric.Sample{
			Name: metric.Prefix + "dovecot_policy_requests_total", Kind: metric.Counter,
			Help:  "Requests to the Dovecot auth policy endpoint (-dovecot-policy), by result: granted, allow, auth_failed, other_protocol and bad_address are answered 200; the others are refused.",
			Label: "result", LabelValue: string(r), Value: float64(s.counts[i].Load()),
		})
	}
	yield(metric.Sample{
		Name: metric.Prefix + "dovecot_policy_connections_evicted_total", Kind: metric.Counter,
		Help:  "Connections to the Dovecot auth policy endpoint closed to make room for a new one, the oldest first, when 1024 were open (Dovecot's last a few milliseconds: many held open is someone holding them).",
		Value: float64(s.evicted.Load()),
	})
}
