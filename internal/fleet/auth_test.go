package fleet

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relaygate/relaygate/internal/fleet/natstest"
	"github.com/relaygate/relaygate/internal/testutil"
)

// exampleAuthorization is the authorization block of
// examples/nats-server-relaygate.conf, as the example has it.
func exampleAuthorization(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../examples/nats-server-relaygate.conf")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	const begin, end = "# BEGIN relaygate authorization\n", "# END relaygate authorization"
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatal("the example has no marked authorization block")
	}
	return s[i+len(begin) : j]
}

// TestFollowerCannotPublish runs nats-server with the example's TLS
// client-certificate users, accounts and permissions: a POP host's
// relaygate publishes and follows; an MTA's relaygate follows, and
// nothing it does puts a message into the stream: publishes on any
// subject, a stream of its own, a consumer's deliveries sent to a
// subject of the stream; a certificate of another CA does not get in at
// all.
func TestFollowerCannotPublish(t *testing.T) {
	dir := t.TempDir()
	pop := testutil.NewPKI(t, filepath.Join(dir, "pop"), testutil.PKIOptions{ClientName: "pop1.example.org"})
	mx := testutil.NewPKI(t, filepath.Join(dir, "mx"), testutil.PKIOptions{ClientName: "mx1.example.org"})
	cas := filepath.Join(dir, "cas.pem")
	a, _ := os.ReadFile(pop.CAFile)
	b, _ := os.ReadFile(mx.CAFile)
	testutil.WriteFile(t, cas, string(a)+string(b), 0o600)
	srv := natstest.Start(t, natstest.Options{Extra: `tls {
  cert_file: "` + pop.ServerCert + `"
  key_file: "` + pop.ServerKey + `"
  ca_file: "` + cas + `"
  verify_and_map: true
}
` + exampleAuthorization(t)})
	url := srv.TLSURL()
	tlsOf := func(p *testutil.PKI) func(*Config) {
		return func(c *Config) { c.CA, c.Cert, c.Key = pop.CAFile, p.ClientCertFile, p.ClientKeyFile }
	}

	pop1 := testFleet(t, url, "pop1", "both", t.TempDir(), tlsOf(pop))
	mx1 := testFleet(t, url, "mx1", "follow", t.TempDir(), tlsOf(mx))
	pop1.Publish("a", login(1, time.Now()))
	testutil.Eventually(t, 10*time.Second, "pop1's login stored", func() bool { return pop1.Stats().publishedOK.Load() == 1 })
	if ev, ok := mx1.Accept(next(t, mx1), time.Now()); !ok || ev.Addr != login(1, time.Now()).Addr {
		t.Fatalf("mx1 follows: %v %v", ev, ok)
	}

	// The MTA's user, publishing by hand on any subject of the stream.
	nc, js := jetStreamClient(t, url, nats.RootCAs(pop.CAFile), nats.ClientCert(mx.ClientCertFile, mx.ClientKeyFile))
	for _, subj := range []string{"relaygate.grants.mx1", "relaygate.grants.pop1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.Publish(ctx, subj, login(9, time.Now()).Encode())
		cancel()
		if err == nil {
			t.Fatalf("the follower's publish on %s was accepted", subj)
		}
		t.Logf("follower publishing on %s: %v", subj, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"evil.>"}})
	cancel()
	if err == nil {
		t.Fatal("the follower created a stream")
	}

	// The reply-subject route: a consumer's next messages go to whatever
	// reply subject the request names, permissions notwithstanding. Named
	// after a subject of the stream, they would be stored again, as
	// another host's; from the followers' account they come back through
	// the import and are stored nowhere.
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second)
	if _, err := js.CreateConsumer(ctx, DefaultStream, jetstream.ConsumerConfig{Name: "copier", AckPolicy: jetstream.AckNonePolicy}); err != nil {
		t.Fatalf("the follower cannot make a consumer (it must, to follow): %v", err)
	}
	cancel()
	for _, reply := range []string{"relaygate.grants.pop2", "relaygate.grants.mx1"} {
		if err := nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+DefaultStream+".copier", reply, []byte(`{"batch":5,"expires":500000000}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Deliveries are immediate (the consumer has a message to give); the
	// stream's count at the end, seconds later, would hold any copy.

	// A relaygate on the MTA's certificate set to publish: its events stay
	// in its outbox, counted as errors, and never reach the stream.
	rogue := testFleet(t, url, "mx1", "both", t.TempDir(), tlsOf(mx), func(c *Config) { c.ackTimeout = 500 * time.Millisecond })
	rogue.Publish("b", login(2, time.Now()))
	testutil.Eventually(t, 15*time.Second, "the refused publish counted", func() bool { return rogue.Stats().publishErrors.Load() >= 1 })
	if n := rogue.Stats().outbox.Load(); n != 1 {
		t.Fatalf("refused event in the outbox: %d, want 1", n)
	}

	// A certificate from another CA is refused at the handshake.
	if nc, err := nats.Connect(url, nats.RootCAs(pop.CAFile), nats.ClientCert(pop.RogueCertFile, pop.RogueKeyFile),
		nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a certificate of another CA connected")
	}
	if n := streamInfo(t, url, nats.RootCAs(pop.CAFile), nats.ClientCert(pop.ClientCertFile, pop.ClientKeyFile)).State.Msgs; n != 1 {
		t.Fatalf("the stream holds %d events, want only pop1's", n)
	}
}
