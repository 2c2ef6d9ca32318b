package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/internal/origin"
	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/receiver/journal/journaltest"
	"github.com/relaygate/relaygate/receiver/relp/relptest"
)

const (
	relpNoise    = "<22>Nov 21 10:00:00 mx1 dovecot[812]: master: Dovecot v2.3.19.1 (9b53102964) starting up for imap, pop3"
	relpUnwanted = "<78>Nov 21 10:00:00 mx1 CRON[4711]: (root) CMD (run-parts /etc/cron.hourly)"
)

// relpConfig is testConfig with -relp on a free loopback port and no
// syslog listener.
func relpConfig(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.UDP, cfg.TCP = "", ""
	cfg.RELP.Addr = "127.0.0.1:0"
	return cfg
}

// relpSession is an open RELP session with the daemon.
type relpSession struct {
	t *testing.T
	c *relptest.Client
}

func openRELP(t *testing.T, d *Daemon) *relpSession {
	t.Helper()
	c, err := relptest.Dial(d.RELPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Open(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	return &relpSession{t, c}
}

func (s *relpSession) send(msg string) uint32 {
	s.t.Helper()
	txnr, err := s.c.Syslog(msg)
	if err != nil {
		s.t.Fatal(err)
	}
	return txnr
}

// expectRsp reads the next frame: the answer 200 to txnr.
func (s *relpSession) expectRsp(txnr uint32, within time.Duration) {
	s.t.Helper()
	f, err := s.c.Read(within)
	if err != nil {
		s.t.Fatalf("waiting for the answer to %d: %v", txnr, err)
	}
	if f.Txnr != txnr || f.Command != "rsp" || !strings.HasPrefix(f.Data, "200 OK") {
		s.t.Fatalf("got %+v, want the answer 200 to %d", f, txnr)
	}
}

func (s *relpSession) expectNothing(within time.Duration) {
	s.t.Helper()
	if f, err := s.c.Read(within); err == nil {
		s.t.Fatalf("unexpected frame %+v", f)
	} else if !relptest.IsTimeout(err) {
		s.t.Fatal(err)
	}
}

// inState reports whether the state file names addr.
func inState(t *testing.T, cfg Config, addr string) bool {
	t.Helper()
	b, err := os.ReadFile(cfg.StatePath)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Contains(string(b), addr)
}

// TestRELPAnswersLoginOnceDurable: on the test's clock, which moves only
// when the test moves it (so the state sync is not due until then), a
// RELP login is applied to the table but answered only with the sync
// that puts it in the state file; the message behind it on its session
// waits for it; messages that make no event are answered at once.
func TestRELPAnswersLoginOnceDurable(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)}
	cfg := relpConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	d, err := New(ctx, cfg, zerolog.New(zerolog.NewTestWriter(t)), clock)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	s := openRELP(t, d)

	// Nothing pending: a Dovecot line that is not a login, and a line of
	// a program no parser handles (dropped by the receiver's filter), are
	// answered while the clock stands still.
	s.expectRsp(s.send(relpNoise), 2*time.Second)
	s.expectRsp(s.send(relpUnwanted), 2*time.Second)

	const addr = "192.0.2.40"
	login := s.send(fmt.Sprintf(dovecotLogin, addr))
	behind := s.send(relpNoise)
	testutil.Eventually(t, 2*time.Second, "the RELP login in the table", func() bool { return d.Granted(netip.MustParseAddr(addr)) })
	s.expectNothing(300 * time.Millisecond)
	if inState(t, cfg, addr) {
		t.Fatal("the login is in the state file before its sync was due")
	}
	// The sync is due 100 ms after the change, on the daemon's clock.
	var (
		f   relptest.Frame
		got bool
	)
	for range 50 {
		clock.advance(100 * time.Millisecond)
		if f, err = s.c.Read(100 * time.Millisecond); err == nil {
			got = true
			break
		} else if !relptest.IsTimeout(err) {
			t.Fatal(err)
		}
	}
	if !got {
		t.Fatal("no answer to the login after 5 s of the daemon's time")
	}
	if f.Txnr != login || !strings.HasPrefix(f.Data, "200 OK") {
		t.Fatalf("first answer %+v, want the login's (%d)", f, login)
	}
	if !inState(t, cfg, addr) {
		t.Fatal("the login was answered before it was in the state file")
	}
	s.expectRsp(behind, 2*time.Second)

	fields := d.logFields()
	if fields["relp_messages_received"] != 4.0 || fields["relp_messages_acked"] != 4.0 || fields["relp_messages_unanswered"] != 0.0 {
		t.Errorf("relp counters: received %v acked %v unanswered %v, want 4 4 0",
			fields["relp_messages_received"], fields["relp_messages_acked"], fields["relp_messages_unanswered"])
	}
	if fields["messages_dropped_unwanted_program"] != 1.0 {
		t.Errorf("messages_dropped_unwanted_program = %v, want 1 (the receiver's filter applies to RELP)", fields["messages_dropped_unwanted_program"])
	}
}

// TestRELPWithJournal: -relp and -journal together, each with its
// acknowledgements: the journal's cursor follows every entry, RELP logins
// are answered once in the state file, whichever source's events come
// first.
func TestRELPWithJournal(t *testing.T) {
	fake := journaltest.Install(t)
	cfg := journalConfig(t, fake)
	cfg.Origin.Mode = origin.ModeVerify // RELP lines here carry no origin element
	cfg.RELP.Addr = "127.0.0.1:0"
	fake.Append(t,
		journaltest.Login("dovecot", journalLogin("192.0.2.10"), 0, "log"),
		journaltest.Login("dovecot", "master: Dovecot v2.3.19.1 starting up", 0, "dovecot"))
	d, stop := launch(t, cfg)
	s := openRELP(t, d)
	testutil.Eventually(t, 5*time.Second, "the cursor at the second entry", func() bool { return readCursor(cfg) == journaltest.Cursor(2) })

	for i, a := range []string{"192.0.2.50", "192.0.2.51"} {
		login := s.send(fmt.Sprintf(dovecotLogin, a))
		noise := s.send(relpNoise)
		fake.Append(t,
			journaltest.Login("dovecot", journalLogin(fmt.Sprintf("192.0.2.%d", 11+i)), 0, "log"),
			journaltest.Login("dovecot", "master: Dovecot v2.3.19.1 starting up", 0, "dovecot"))
		s.expectRsp(login, 5*time.Second)
		if !inState(t, cfg, a) {
			t.Fatalf("RELP login %s answered before it was in the state file", a)
		}
		s.expectRsp(noise, 5*time.Second)
	}
	testutil.Eventually(t, 5*time.Second, "the cursor at the last entry", func() bool { return readCursor(cfg) == journaltest.Cursor(6) })
	for _, a := range []string{"192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.50", "192.0.2.51"} {
		if !d.Granted(netip.MustParseAddr(a)) {
			t.Errorf("%s not granted", a)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestRELPShutdownDrains: when the daemon stops, the grant service keeps
// running while the RELP sessions drain, so every login already handed on
// is answered (after its sync) before the serverclose hint.
func TestRELPShutdownDrains(t *testing.T) {
	cfg := relpConfig(t)
	d, stop := launch(t, cfg)
	s := openRELP(t, d)
	var txnrs []uint32
	for i := range 20 {
		txnrs = append(txnrs, s.send(fmt.Sprintf(dovecotLogin, fmt.Sprintf("192.0.2.%d", 100+i))))
	}
	testutil.Eventually(t, 5*time.Second, "the last login in the table", func() bool { return d.Granted(netip.MustParseAddr("192.0.2.119")) })
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	for i, txnr := range txnrs {
		f, err := s.c.Read(5 * time.Second)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if f.Txnr != txnr || f.Command != "rsp" {
			t.Fatalf("answer %d: %+v, want rsp %d", i, f, txnr)
		}
	}
	if f, err := s.c.Read(5 * time.Second); err != nil || f.Command != "serverclose" {
		t.Fatalf("after the answers: %+v %v, want the serverclose hint", f, err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if a := fmt.Sprintf("192.0.2.%d", 100+i); !inState(t, cfg, a) {
			t.Errorf("%s answered but not in the state file", a)
		}
	}
}

// Without a state file nothing is durable: a RELP login is answered once
// handed to the grant table.
func TestRELPWithoutStateFile(t *testing.T) {
	cfg := relpConfig(t)
	cfg.StatePath = ""
	d, _ := launch(t, cfg)
	s := openRELP(t, d)
	s.expectRsp(s.send(fmt.Sprintf(dovecotLogin, "192.0.2.60")), 2*time.Second)
	s.expectRsp(s.send(relpNoise), 2*time.Second)
	if !d.Granted(netip.MustParseAddr("192.0.2.60")) {
		t.Error("not granted")
	}
}

// TestRELPOrigin: the origin element of a RELP message is believed from a
// sender in -origin-from, or over -relp-tls from one with a verified
// client certificate (-origin-from tls), and from no one else; refused
// logins are answered too.
func TestRELPOrigin(t *testing.T) {
	pki := testutil.NewPKI(t, "", testutil.PKIOptions{})
	cases := []struct {
		name    string
		edit    func(*Config)
		tls     bool
		granted bool
	}{
		{"from address", func(c *Config) { c.Origin.From = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} }, false, true},
		{"untrusted address", func(c *Config) { c.Origin.FromTLS = true }, false, false},
		{"tls client certificate", func(c *Config) {
			c.Origin.FromTLS = true
			c.RELP.TLS = true
			c.TLSCert, c.TLSKey, c.TLSClientCA = pki.ServerCert, pki.ServerKey, pki.CAFile
		}, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := relpConfig(t)
			cfg.Origin.Mode, cfg.Origin.LoginDefs = origin.ModeRequire, "/nonexistent"
			tc.edit(&cfg)
			d, _ := launch(t, cfg)
			var s *relpSession
			if tc.tls {
				conn, err := tls.Dial("tcp", d.RELPAddr().String(), pki.ClientConfig(&pki.Client))
				if err != nil {
					t.Fatal(err)
				}
				c := relptest.New(conn)
				t.Cleanup(func() { c.Close() })
				if err := c.Open(5 * time.Second); err != nil {
					t.Fatal(err)
				}
				s = &relpSession{t, c}
			} else {
				s = openRELP(t, d)
			}
			s.expectRsp(s.send(originLogin(elem("0"), "192.0.2.70")), 5*time.Second)
			if got := d.Granted(netip.MustParseAddr("192.0.2.70")); got != tc.granted {
				t.Errorf("granted %v, want %v", got, tc.granted)
			}
			if untrusted := d.origin.refused[origin.ReasonUntrusted].Load(); (untrusted == 1) == tc.granted {
				t.Errorf("untrusted_sender refusals %d", untrusted)
			}
		})
	}
}

// A RELP listener outside -allow: the connection is closed at accept.
func TestRELPAllow(t *testing.T) {
	cfg := relpConfig(t)
	cfg.Allow = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	d, _ := launch(t, cfg)
	c, err := net.Dial("tcp", d.RELPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(testutil.EventuallyFloor))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a listener that should have closed the connection", n)
	}
	testutil.Eventually(t, 2*time.Second, "the refusal counted", func() bool {
		return d.logFields()["relp_connections_refused_not_allowed"] == 1.0
	})
}

func TestRELPConfigCheck(t *testing.T) {
	base := func() Config {
		cfg := relpConfig(t)
		cfg.TakeoverTimeout, cfg.UDPReadBuf, cfg.MaxConns = time.Second, 1<<20, 16
		return cfg
	}
	cfg := base()
	if err := cfg.Check(); err != nil {
		t.Errorf("-relp as the only listener: %v", err)
	}
	cfg = base()
	cfg.Takeover = true
	if err := cfg.Check(); err != nil {
		t.Errorf("-takeover with -relp alone: %v", err)
	}
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.RELP.Addr = "" }, "-relp"},
		{func(c *Config) { c.UDP, c.RELP.Addr, c.RELP.TLS = "127.0.0.1:0", "", true }, "-relp-tls is only used with -relp"},
		{func(c *Config) { c.RELP.TLS = true }, "-relp-tls needs -tls-cert and -tls-key"},
		{func(c *Config) { c.RELP.Addr = "2514" }, `-relp "2514"`},
	} {
		cfg := base()
		tc.edit(&cfg)
		if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want one naming %q", err, tc.want)
		}
	}
}

// TestRELPEndedSessionsHoldNoAcks: while nothing becomes durable (here the
// daemon's clock stands still, so the state sync is never due; in life a
// disk that refuses writes), a sender that sends logins and drops its
// session, again and again, must not make relaygate keep an
// acknowledgement for every login it ever sent: those of ended sessions do
// nothing and are let go, so the waiting ones stay about what the open
// sessions' windows hold.
func TestRELPEndedSessionsHoldNoAcks(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)}
	cfg := relpConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	d, err := New(ctx, cfg, zerolog.New(zerolog.NewTestWriter(t)), clock)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	const sessions, perSession = 24, 500
	for i := range sessions {
		c, err := relptest.Dial(d.RELPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Open(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		for j := range perSession {
			if _, err := c.Syslog(fmt.Sprintf(dovecotLogin, fmt.Sprintf("198.51.%d.%d", 100+i%100, j%250+1))); err != nil {
				t.Fatal(err)
			}
		}
		// Until the session has handed its logins on, and the pipeline
		// has had time for them.
		testutil.Eventually(t, 5*time.Second, "the session's logins received", func() bool {
			return relpReceived(d) == int64((i+1)*perSession)
		})
		time.Sleep(20 * time.Millisecond)
		c.Close()
		testutil.Eventually(t, 5*time.Second, "the session ended", func() bool { return d.rin.stats.Closed("eof") == int64(i+1) })
	}
	time.Sleep(50 * time.Millisecond)
	if n := d.rin.acks.Len(); n > 8192 {
		t.Fatalf("%d acknowledgements held after %d sessions of %d logins, all ended", n, sessions, perSession)
	}
}

// relpReceived is relaygate_relp_messages_received_total.
func relpReceived(d *Daemon) int64 {
	v, _ := d.logFields()["relp_messages_received"].(float64)
	return int64(v)
}
