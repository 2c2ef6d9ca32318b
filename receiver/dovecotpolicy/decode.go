package dovecotpolicy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Request is what relaygate reads of the JSON body Dovecot's auth process
// POSTs to an auth policy server. Dovecot builds the body from
// auth_policy_request_attributes (2.3 default: login=%{requested_username}
// pwhash=%{hashed_password} remote=%{rip} device_id=%{client_id}
// protocol=%s session_id=%{session}; 2.4 adds fail_type and names rip
// %{remote_ip}), every value a JSON string, and appends the booleans
// "success" and "policy_reject" (command=report only) and "tls". Real
// Dovecot 2.3.19.1 sends, for an IMAP login:
//
//	{"device_id":"","login":"alice","protocol":"imap","pwhash":"0fa1","remote":"127.0.0.1","session_id":"kaC1D/1hMMl/AAAB","success":true,"policy_reject":false,"tls":false}
//
// Only the keys below are read; every other key (pwhash, device_id,
// fail_type, nested objects an operator's attributes make) is skipped
// unread.
type Request struct {
	Login     string // "login": the user name as the client gave it
	Remote    string // "remote": the client's address, as Dovecot prints it
	Protocol  string // "protocol": the service (imap, pop3, submission, smtp, sieve, …)
	SessionID string // "session_id": the session=<…> of Dovecot's log lines

	Success      bool // "success": authentication succeeded (report only)
	HasSuccess   bool // the body carried "success"
	PolicyReject bool // "policy_reject": a policy check refused it
	TLS          bool // "tls": the client connection was TLS
}

// maxKeys bounds the top-level keys of one body: Dovecot's default sends
// nine.
const maxKeys = 256

// errDecode wraps every decoding error.
var errDecode = errors.New("bad request body")

// DecodeRequest reads a request body strictly: one JSON object and nothing
// after it; each key relaygate reads at most once (a second "remote" would
// leave two readers of the body with two answers), and of its type (a
// string, or for success, policy_reject and tls a boolean; null is
// neither).
func DecodeRequest(body []byte) (Request, error) {
	var r Request
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return r, fmt.Errorf("%w: not a JSON object", errDecode)
	}
	seen := map[string]bool{}
	keys := 0
	for dec.More() {
		if keys++; keys > maxKeys {
			return r, fmt.Errorf("%w: more than %d keys", errDecode, maxKeys)
		}
		tok, err := dec.Token()
		if err != nil {
			return r, fmt.Errorf("%w: %v", errDecode, err)
		}
		key, ok := tok.(string)
		if !ok {
			return r, fmt.Errorf("%w: object key expected", errDecode)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return r, fmt.Errorf("%w: value of %q: %v", errDecode, key, err)
		}
		var dst any
		switch key {
		case "login":
			dst = &r.Login
		case "remote":
			dst = &r.Remote
		case "protocol":
			dst = &r.Protocol
		case "session_id":
			dst = &r.SessionID
		case "success":
			dst, r.HasSuccess = &r.Success, true
		case "policy_reject":
			dst = &r.PolicyReject
		case "tls":
			dst = &r.TLS
		default:
			continue
		}
		if seen[key] {
			return r, fmt.Errorf("%w: %q given twice", errDecode, key)
		}
		seen[key] = true
		if err := decodeTyped(raw, dst); err != nil {
			return r, fmt.Errorf("%w: %q: %v", errDecode, key, err)
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return r, fmt.Errorf("%w: unterminated object", errDecode)
	}
	if _, err := dec.Token(); err != io.EOF {
		return r, fmt.Errorf("%w: data after the object", errDecode)
	}
	return r, nil
}

// decodeTyped decodes raw into *string or *bool, refusing null and every
// other type (encoding/json would leave the destination alone on null).
func decodeTyped(raw json.RawMessage, dst any) error {
	switch d := dst.(type) {
	case *string:
		if len(raw) == 0 || raw[0] != '"' {
			return errors.New("want a string")
		}
		return json.Unmarshal(raw, d)
	case *bool:
		switch string(raw) {
		case "true":
			*d = true
		case "false":
			*d = false
		default:
			return errors.New("want true or false")
		}
	}
	return nil
}
