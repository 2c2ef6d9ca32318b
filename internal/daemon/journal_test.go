package daemon

import (
	"context"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/internal/origin"
	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/receiver/journal/journaltest"
)

func TestMain(m *testing.M) {
	journaltest.Main() // this test binary is also the fake journalctl
	os.Exit(m.Run())
}

func journalLogin(rip string) string {
	return "imap-login: Login: user=<alice>, method=PLAIN, rip=" + rip + ", lip=192.0.2.1, mpid=1, session=<s" + rip + ">"
}

// journalConfig is testConfig reading only the fake journal, -origin
// require.
func journalConfig(t *testing.T, fake *journaltest.Fake) Config {
	cfg := testConfig(t)
	cfg.UDP, cfg.TCP = "", ""
	cfg.Journal = JournalConfig{On: true, Journalctl: fake.Path}
	cfg.Origin.Mode = origin.ModeRequire
	cfg.Origin.LoginDefs = "/nonexistent" // UID_MIN 1000
	cfg.TakeoverTimeout, cfg.UDPReadBuf, cfg.MaxConns = time.Second, 1<<20, 16
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func cursorFileOf(cfg Config) string { return cfg.StatePath + journalCursorSuffix }

func readCursor(cfg Config) string {
	b, _ := os.ReadFile(cursorFileOf(cfg))
	return strings.TrimSpace(string(b))
}

// Journal lines go through the same pipeline and origin gate: Dovecot's
// own line (uid 0) grants, the same text written by a login user is
// refused and counted; the cursor follows every entry, those that made no
// event too.
func TestJournalGrantsByOrigin(t *testing.T) {
	fake := journaltest.Install(t)
	cfg := journalConfig(t, fake)
	fake.Append(t,
		journaltest.Login("dovecot", journalLogin("192.0.2.10"), 0, "log"),
		journaltest.Login("dovecot", journalLogin("192.0.2.66"), 65534, "logger"),
		journaltest.Login("dovecot", "master: Dovecot v2.3.19.1 starting up", 0, "dovecot"))
	d, stop := launch(t, cfg)
	testutil.Eventually(t, 5*time.Second, "192.0.2.10 granted", func() bool { return d.Granted(netip.MustParseAddr("192.0.2.10")) })
	testutil.Eventually(t, 5*time.Second, "the cursor at the last entry", func() bool { return readCursor(cfg) == journaltest.Cursor(3) })
	if d.Granted(netip.MustParseAddr("192.0.2.66")) {
		t.Error("the login line written by uid 65534 granted")
	}
	if v := d.origin.refused[origin.ReasonLoginUser].Load(); v != 1 {
		t.Errorf("origin refused login_user = %d, want 1", v)
	}
	fields := d.logFields()
	if fields["journal_entries"] != 3.0 {
		t.Errorf("journal_entries = %v", fields["journal_entries"])
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// A restart resumes right after the saved cursor: what was logged while
// relaygate was down is granted, nothing before it is read again.
func TestJournalResumesAfterRestart(t *testing.T) {
	fake := journaltest.Install(t)
	cfg := journalConfig(t, fake)
	fake.Append(t, journaltest.Login("dovecot", journalLogin("192.0.2.10"), 0, "log"))
	d, stop := launch(t, cfg)
	testutil.Eventually(t, 5*time.Second, "192.0.2.10 granted", func() bool { return d.Granted(netip.MustParseAddr("192.0.2.10")) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if c := readCursor(cfg); c != journaltest.Cursor(1) {
		t.Fatalf("cursor after stop = %q", c)
	}
	fake.Append(t, journaltest.Login("dovecot", journalLogin("192.0.2.11"), 0, "log"))
	d2, _ := launch(t, cfg)
	testutil.Eventually(t, 5*time.Second, "192.0.2.11 granted after the restart", func() bool { return d2.Granted(netip.MustParseAddr("192.0.2.11")) })
	if !d2.Granted(netip.MustParseAddr("192.0.2.10")) {
		t.Error("192.0.2.10 lost across the restart")
	}
	calls := fake.Calls()
	if !slices.Contains(calls[len(calls)-1], "--cursor="+journaltest.Cursor(1)) {
		t.Errorf("second start: %q", calls[len(calls)-1])
	}
	fields := d2.logFields()
	if fields["journal_entries"] != 1.0 {
		t.Errorf("the second daemon read %v entries, want 1 (only the new one)", fields["journal_entries"])
	}
}

// At a resume, a login older than the grace period is skipped (counted);
// a recent one is granted from its journal time, not from the replay's.
func TestJournalResumeSkipsOldLogins(t *testing.T) {
	fake := journaltest.Install(t)
	cfg := journalConfig(t, fake)
	if err := os.WriteFile(cursorFileOf(cfg), []byte(journaltest.Cursor(0)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	logged := now.Add(-10 * time.Minute).Truncate(time.Microsecond)
	fake.Append(t,
		journaltest.Entry{Realtime: now.Add(-2 * time.Hour), Fields: journaltest.Login("dovecot", journalLogin("192.0.2.20"), 0, "log").Fields},
		journaltest.Entry{Realtime: logged, Fields: journaltest.Login("dovecot", journalLogin("192.0.2.21"), 0, "log").Fields})
	d, _ := launch(t, cfg)
	testutil.Eventually(t, 5*time.Second, "192.0.2.21 granted", func() bool { return d.Granted(netip.MustParseAddr("192.0.2.21")) })
	if d.Granted(netip.MustParseAddr("192.0.2.20")) {
		t.Error("a login two hours old granted at resume")
	}
	if v := d.logFields()["journal_skipped_stale"]; v != 1.0 {
		t.Errorf("journal_skipped_stale = %v", v)
	}
	// The open session holds the grant; its login time is the journal's.
	g, _ := d.lookup(netip.MustParseAddr("192.0.2.21"))
	for _, opened := range g.Sessions {
		if !opened.Equal(logged) {
			t.Errorf("session opened at %v, want the journal time %v", opened, logged)
		}
	}
}

func TestJournalConfigCheck(t *testing.T) {
	cfg := testConfig(t)
	cfg.UDP, cfg.TCP = "", ""
	cfg.TakeoverTimeout, cfg.UDPReadBuf, cfg.MaxConns = time.Second, 1<<20, 16
	if err := cfg.Check(); err == nil {
		t.Error("no listener and no -journal accepted")
	}
	cfg.Journal.On = true
	if err := cfg.Check(); err != nil {
		t.Errorf("-journal alone: %v", err)
	}
	cfg.Takeover = true
	if err := cfg.Check(); err == nil {
		t.Error("-takeover with -journal alone accepted")
	}
	cfg = testConfig(t)
	cfg.TakeoverTimeout, cfg.UDPReadBuf, cfg.MaxConns = time.Second, 1<<20, 16
	cfg.Journal.Dir = "/var/log/journal"
	if err := cfg.Check(); err == nil {
		t.Error("-journal-dir without -journal accepted")
	}
}

func TestJournalctlMissingFailsStart(t *testing.T) {
	cfg := testConfig(t)
	cfg.Journal = JournalConfig{On: true, Journalctl: "/nonexistent/journalctl"}
	_, err := New(context.Background(), cfg, zerolog.New(zerolog.NewTestWriter(t)), funcClock(time.Now))
	if err == nil || !strings.Contains(err.Error(), "-journal") {
		t.Fatalf("err = %v", err)
	}
}
