package dovecotpolicy

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// DefaultHeader is the header Dovecot sends auth_policy_server_api_header
// in when the setting has no "Name:" part.
const DefaultHeader = "X-API-Key"

// maxSecretFile bounds the secret file (an HTTP header line).
const maxSecretFile = 4096

// Secret is the header every request must carry: Dovecot's
// auth_policy_server_api_header, read the way Dovecot reads it (auth-policy.c,
// 2.3 and 2.4): "Name:value" sends header Name with everything after the
// first colon, a value without a colon is sent as X-API-Key.
type Secret struct {
	Header string // canonical header name
	value  [sha256.Size]byte
	// WorldReadable: the file's mode lets every local user read it.
	WorldReadable bool
}

// ParseSecret reads an auth_policy_server_api_header value.
func ParseSecret(s string) (Secret, error) {
	if strings.ContainsAny(s, "\r\n") {
		// Dovecot 2.3.19.1 aborts its auth process (an assertion in
		// http_client_request_add_header) on every authentication when the
		// header value holds a line break: with auth_policy_server_api_header
		// = <FILE a trailing newline of FILE is part of the value.
		return Secret{}, errors.New("contains a line break (a trailing newline too: Dovecot, reading the same file with auth_policy_server_api_header = <FILE, sends it and its auth process aborts on every login; write it with printf '%s')")
	}
	header, value := DefaultHeader, s
	if name, rest, ok := strings.Cut(s, ":"); ok {
		if !validHeaderName(name) {
			return Secret{}, fmt.Errorf("header name %q (before the first ':') is not a valid HTTP header name", name)
		}
		header, value = name, rest
	}
	// What an HTTP server reads: the value without surrounding blanks
	// (Dovecot sends "Name: value" for "Name:value", and "Name:  value" for
	// "Name: value").
	value = strings.Trim(value, " \t")
	if value == "" {
		return Secret{}, errors.New("empty secret")
	}
	if !validHeaderValue(value) {
		return Secret{}, errors.New("the secret has characters other than printable ASCII, space and tab")
	}
	return Secret{Header: http.CanonicalHeaderKey(header), value: sha256.Sum256([]byte(value))}, nil
}

// LoadSecret reads the secret file (-dovecot-policy-secret-file): exactly
// what auth_policy_server_api_header is set to, with no line break, so
// that Dovecot can read the same file with
// auth_policy_server_api_header = <FILE.
func LoadSecret(path string) (Secret, error) {
	f, err := os.Open(path)
	if err != nil {
		return Secret{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Secret{}, err
	}
	if !fi.Mode().IsRegular() {
		return Secret{}, fmt.Errorf("%s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return Secret{}, err
	}
	if len(b) > maxSecretFile {
		return Secret{}, fmt.Errorf("%s: longer than %d bytes", path, maxSecretFile)
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return Secret{}, fmt.Errorf("%s: contains a NUL byte", path)
	}
	s, err := ParseSecret(string(b))
	if err != nil {
		return Secret{}, fmt.Errorf("%s: %w", path, err)
	}
	s.WorldReadable = fi.Mode().Perm()&0o004 != 0
	return s, nil
}

// matches reports whether r carries the secret exactly once. The values
// are compared as SHA-256 digests in constant time, so neither the
// content nor the length of the secret shows in the time taken.
func (s *Secret) matches(r *http.Request) bool {
	got := r.Header.Values(s.Header)
	if len(got) != 1 {
		return false
	}
	h := sha256.Sum256([]byte(got[0]))
	return subtle.ConstantTimeCompare(h[:], s.value[:]) == 1
}

// validHeaderName: an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue: printable ASCII, space and tab (a secret needs no
// more, and every HTTP implementation carries these unchanged).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c > 0x7e {
			return false
		}
	}
	return true
}
