package fleet

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/fleet/natstest"
	"github.com/relaygate/relaygate/internal/postfix"
	"github.com/relaygate/relaygate/internal/testutil"
)

func findings(fs []postfix.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintln(&b, f)
	}
	return b.String()
}

// TestCheck: what `relaygate check` says about the fleet: a server that
// cannot be reached, a missing stream (a problem only for a follower),
// and a healthy stream.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	ports := natstest.FreePorts(t, 1)
	down := Config{URLs: fmt.Sprintf("nats://127.0.0.1:%d", ports[0]), Stream: DefaultStream, Subject: DefaultSubject, Name: "mx1", Mode: "follow", Grace: 30 * time.Minute}
	out := findings(Check(ctx, down))
	if !strings.Contains(out, "PROBLEM: cannot connect to the fleet at nats://127.0.0.1:") {
		t.Fatalf("unreachable:\n%s", out)
	}

	srv := natstest.Start(t, natstest.Options{})
	follow := down
	follow.URLs = srv.URL()
	if out := findings(Check(ctx, follow)); !strings.Contains(out, "ok: connected to the fleet") ||
		!strings.Contains(out, "PROBLEM: stream RELAYGATE does not exist, and this relaygate only follows") ||
		!strings.Contains(out, "note: the fleet connection is not encrypted") {
		t.Fatalf("no stream, follower:\n%s", out)
	}
	publish := follow
	publish.Mode = "both"
	if out := findings(Check(ctx, publish)); strings.Contains(out, "PROBLEM") || !strings.Contains(out, "creates it when it first publishes") {
		t.Fatalf("no stream, publisher:\n%s", out)
	}
	pop1 := testFleet(t, srv.URL(), "pop1", "publish", t.TempDir())
	pop1.Publish("x", login(1, time.Now()))
	testutil.Eventually(t, 10*time.Second, "published", func() bool { return pop1.Stats().publishedOK.Load() == 1 })
	if out := findings(Check(ctx, follow)); strings.Contains(out, "PROBLEM") || !strings.Contains(out, "ok: stream RELAYGATE: 1 events (#1 to #1), 1 replica(s), max age 1h2m0s") {
		t.Fatalf("healthy:\n%s", out)
	}
	longer := follow
	longer.Grace = 2 * time.Hour
	if out := findings(Check(ctx, longer)); !strings.Contains(out, "PROBLEM: stream RELAYGATE forgets events after 1h2m0s, sooner than -grace plus a minute (2h1m0s)") {
		t.Fatalf("max age below grace:\n%s", out)
	}
}

func TestConfigCheck(t *testing.T) {
	base := func() Config {
		return Config{URLs: "nats://127.0.0.1:4222", Stream: DefaultStream, Subject: DefaultSubject, Mode: "both", CatchUp: time.Second, OutboxMax: 10}
	}
	c := base()
	if err := c.Check(); err != nil || c.Name == "" {
		t.Fatalf("defaults: %v, name %q", err, c.Name)
	}
	for _, bad := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.URLs = "http://x:1" }, "scheme"},
		{func(c *Config) { c.URLs = " , " }, "no URL"},
		{func(c *Config) { c.Mode = "lead" }, "-nats-mode"},
		{func(c *Config) { c.Stream = "A.B" }, "-nats-stream"},
		{func(c *Config) { c.Subject = "relaygate.>" }, "-nats-subject"},
		{func(c *Config) { c.Name = "pop.1" }, "-nats-name"},
		{func(c *Config) { c.Cert = "/x" }, "go together"},
		{func(c *Config) { c.CA = "/nonexistent/ca.pem" }, "-nats-ca"},
		{func(c *Config) { c.OutboxMax = 0 }, "-nats-outbox-max"},
		{func(c *Config) { c.URLs, c.Creds = "", "/x" }, "only used with -nats-url"},
	} {
		c := base()
		bad.edit(&c)
		if err := c.Check(); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("want an error about %s, got %v", bad.want, err)
		}
	}
	if got := HostToken("mx1.example.org"); got != "mx1" {
		t.Errorf("HostToken = %q", got)
	}
	if got := HostToken("a b*c"); got != "a_b_c" {
		t.Errorf("HostToken = %q", got)
	}
}
