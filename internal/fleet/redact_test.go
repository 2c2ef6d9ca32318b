package fleet

import (
	"strings"
	"testing"
)

// TestRedact: no secret of a -nats-url reaches a log line, an error, the
// status or `relaygate check`: not a password, not a token (a user name
// without a password, which NATS takes as a token), not in a URL that
// does not parse.
func TestRedact(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://alice:s3cret@n1:4222", "nats://alice:xxx@n1:4222"},
		{"nats://s3cret@n1:4222", "nats://xxx@n1:4222"},
		{"tls://s3cret@n1:4222", "tls://xxx@n1:4222"},
		{"nats://alice:s3c%zzret@n1:4222", "nats://xxx@n1:4222"},
	} {
		if got := redact(c.in); got != c.want {
			t.Errorf("redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, u := range []string{"http://alice:s3cret@n1:4222", "nats://alice:s3c%zzret@n1:4222", "nats://s3cret@", "ftp://s3cret@n1"} {
		c := Config{URLs: u, Stream: DefaultStream, Subject: DefaultSubject, Mode: "both", Name: "a", OutboxMax: 1}
		err := c.Check()
		if err == nil {
			t.Errorf("-nats-url %s accepted", u)
			continue
		}
		if strings.Contains(err.Error(), "s3c") {
			t.Errorf("-nats-url %s: the error shows the secret: %v", u, err)
		}
	}
}
