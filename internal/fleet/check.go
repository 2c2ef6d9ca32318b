package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relaygate/relaygate/internal/postfix"
)

// CheckTimeout bounds what `relaygate check` waits for the fleet.
const CheckTimeout = 5 * time.Second

// Check is what `relaygate check` says about the fleet of serve's flags:
// whether a server answers (connecting with the same credentials and
// TLS), and whether the stream exists and keeps events long enough.
// Nothing without -nats-url.
func Check(ctx context.Context, c Config) []postfix.Finding {
	if !c.On() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	urls, err := c.ServerURLs()
	if err != nil {
		return []postfix.Finding{{ID: "fleet-connect", Problem: true, Msg: err.Error(), Fix: "give -nats-url nats://host:4222 or tls://host:4222, comma-separated"}}
	}
	opts := append([]nats.Option{nats.Name("relaygate check"), nats.Timeout(CheckTimeout), nats.NoReconnect()}, c.authOptions()...)
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		return []postfix.Finding{{ID: "fleet-connect", Problem: true,
			Msg: fmt.Sprintf("cannot connect to the fleet at %s: %v (logins still grant locally, but this relaygate neither publishes nor follows)", strings.Join(redactAll(urls), ","), err),
			Fix: "check that nats-server runs there and is reachable, and -nats-creds, -nats-ca, -nats-cert and -nats-key (docs/FLEET.md)"}}
	}
	defer nc.Close()
	var out []postfix.Finding
	where := redact(nc.ConnectedUrl())
	if cl := nc.ConnectedClusterName(); cl != "" {
		where += fmt.Sprintf(" (server %s of cluster %s)", nc.ConnectedServerName(), cl)
	} else {
		where += fmt.Sprintf(" (server %s, not clustered)", nc.ConnectedServerName())
	}
	out = append(out, postfix.Finding{ID: "fleet-connect", Msg: "connected to the fleet at " + where})
	if !c.TLS() {
		out = append(out, postfix.Finding{ID: "fleet-tls", Note: true,
			Msg: "the fleet connection is not encrypted (no -nats-ca and no tls:// URL): whoever can reach the servers' network sees every login; use TLS off a trusted network"})
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return append(out, postfix.Finding{ID: "fleet-stream", Problem: true, Msg: err.Error(), Fix: "enable JetStream on the servers (jetstream { store_dir: … })"})
	}
	st, err := js.Stream(ctx, c.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound) && c.Publishes():
		return append(out, postfix.Finding{ID: "fleet-stream", Note: true,
			Msg: fmt.Sprintf("stream %s does not exist yet: this relaygate creates it when it first publishes (subjects %s.>, max age %s, 3 replicas on a cluster)", c.Stream, c.Subject, c.MaxAge())})
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return append(out, postfix.Finding{ID: "fleet-stream", Problem: true,
			Msg: fmt.Sprintf("stream %s does not exist, and this relaygate only follows", c.Stream),
			Fix: fmt.Sprintf("start a publishing relaygate first, or create it: nats stream add %s --subjects '%s.>' --storage file --replicas 3 --max-age %s --dupe-window 2m --discard old", c.Stream, c.Subject, c.MaxAge())})
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return append(out, postfix.Finding{ID: "fleet-stream", Problem: true, Msg: "JetStream is not enabled for this user's account: " + err.Error(),
			Fix: "enable JetStream on the servers (jetstream { store_dir: … }) and for the account"})
	case err != nil:
		return append(out, postfix.Finding{ID: "fleet-stream", Problem: true, Msg: fmt.Sprintf("cannot read stream %s: %v", c.Stream, err),
			Fix: "allow this user $JS.API.INFO and $JS.API.STREAM.INFO." + c.Stream + " (examples/nats-server-relaygate.conf)"})
	}
	info := st.CachedInfo()
	out = append(out, postfix.Finding{ID: "fleet-stream", Msg: fmt.Sprintf("stream %s: %d events (#%d to #%d), %d replica(s), max age %s",
		c.Stream, info.State.Msgs, info.State.FirstSeq, info.State.LastSeq, info.Config.Replicas, info.Config.MaxAge)})
	if a := info.Config.MaxAge; a > 0 && a < c.Window() {
		out = append(out, postfix.Finding{ID: "fleet-max-age", Problem: true,
			Msg: fmt.Sprintf("stream %s forgets events after %s, sooner than -grace plus a minute (%s): a relaygate that starts misses older active grants", c.Stream, a, c.Window()),
			Fix: fmt.Sprintf("nats stream edit %s --max-age %s", c.Stream, c.MaxAge())})
	}
	if !sizeBounded(info.Config.MaxMsgSize) {
		out = append(out, postfix.Finding{ID: "fleet-max-msg-size", Note: true,
			Msg: fmt.Sprintf("stream %s takes messages of %d bytes (<= 0: any size), far more than an event: a hostile publisher can make every follower read them", c.Stream, info.Config.MaxMsgSize),
			Fix: fmt.Sprintf("nats stream edit %s --max-msg-size 3072", c.Stream)})
	}
	if !slices.Contains(info.Config.Subjects, c.Subject+".>") && !slices.Contains(info.Config.Subjects, ">") {
		out = append(out, postfix.Finding{ID: "fleet-subjects", Problem: true,
			Msg: fmt.Sprintf("stream %s takes subjects %v, not %s.> (-nats-subject)", c.Stream, info.Config.Subjects, c.Subject),
			Fix: fmt.Sprintf("nats stream edit %s --subjects '%s.>'", c.Stream, c.Subject)})
	}
	if info.Config.Replicas < 3 && nc.ConnectedClusterName() != "" {
		out = append(out, postfix.Finding{ID: "fleet-replicas", Note: true,
			Msg: fmt.Sprintf("stream %s has %d replica(s) on a cluster: losing that server loses the stream", c.Stream, info.Config.Replicas)})
	}
	if cl := info.Cluster; cl != nil {
		for _, p := range cl.Replicas {
			if p.Offline || !p.Current {
				out = append(out, postfix.Finding{ID: "fleet-replicas", Note: true,
					Msg: fmt.Sprintf("stream %s: replica on %s is offline or behind", c.Stream, p.Name)})
			}
		}
	}
	return out
}
