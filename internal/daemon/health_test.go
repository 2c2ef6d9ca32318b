package daemon

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/receiver/journal/journaltest"
)

// A journal entry journalctl cannot get past (it exits there on every run;
// journalctl 252 with --all did so on a 20 MiB binary MESSAGE any local
// user can write): the reader skips it after a few runs, the logins after
// it are granted, and /healthz and relaygate_healthy report it.
func TestHealthzReportsStuckJournal(t *testing.T) {
	fake := journaltest.Install(t)
	cfg := journalConfig(t, fake)
	cfg.Metrics = "127.0.0.1:0"
	poison := journaltest.Login("dovecot", "", 65534, "python3")
	poison.Fields[journaltest.FailField] = "Failed to allocate JSON data: Cannot allocate memory"
	fake.Append(t, journaltest.Login("dovecot", journalLogin("192.0.2.10"), 0, "log"), poison,
		journaltest.Login("dovecot", journalLogin("192.0.2.11"), 0, "log"))
	d, stop := launch(t, cfg)
	testutil.Eventually(t, 10*time.Second, "the login after the stuck entry granted", func() bool {
		return d.Granted(netip.MustParseAddr("192.0.2.11"))
	})
	body, code := httpGet(t, "http://"+d.MetricsAddr()+"/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "journal") || !strings.Contains(body, "skipped") {
		t.Errorf("/healthz = %d %q, want 503 naming the skipped journal entry", code, body)
	}
	m := scrape(t, d.MetricsAddr())
	if m[`relaygate_journal_skipped_total{reason="stuck"}`] != 1 || m["relaygate_healthy"] != 0 {
		t.Errorf("skipped{stuck} %v, healthy %v", m[`relaygate_journal_skipped_total{reason="stuck"}`], m["relaygate_healthy"])
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// Without -journal, and with a healthy reader, nothing changes.
func TestHealthWatched(t *testing.T) {
	var h publishHealth
	if s := h.status(); s != "" {
		t.Fatalf("zero: %q", s)
	}
	why := ""
	h.watch(func() string { return why })
	if s := h.status(); s != "" {
		t.Fatalf("healthy source: %q", s)
	}
	why = "journal: stuck"
	h.failed(time.Now())
	if s := h.status(); !strings.Contains(s, "map publish failing") || !strings.HasSuffix(s, "; journal: stuck") {
		t.Errorf("both: %q", s)
	}
	h.succeeded()
	if s := h.status(); s != "journal: stuck" {
		t.Errorf("source only: %q", s)
	}
}
