package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/internal/testutil"
)

// A reload (and a start) with a broken rules file and a broken exclusion
// file names every error, each bad exclusion line included, in one log
// line; before, only the first failure was named, so fixing a file and
// sending SIGHUP again revealed the next one.
func TestReloadNamesEveryError(t *testing.T) {
	cfg := testConfig(t)
	dir := filepath.Dir(cfg.MapPath)
	excl := filepath.Join(dir, "exclude")
	rules := filepath.Join(dir, "rules.yaml")
	testutil.WriteFile(t, excl, "192.0.2.0/24\n", 0o644)
	testutil.WriteFile(t, rules, "rules:\n  - name: other\n    programs: [otherd]\n    regex: '^ok (?P<addr>\\S+)'\n", 0o644)
	cfg.TCP, cfg.ExcludeFile, cfg.Parsers.Rules = "", excl, rules
	logs := new(syncBuffer)
	ctx, cancel := context.WithCancel(context.Background())
	d, err := New(ctx, cfg, zerolog.New(logs), cdbwriter.SystemClock{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	testutil.WriteFile(t, rules, "rules:\n  - name: broken\n    programs: [otherd]\n    regex: '(?P<addr>'\n", 0o644)
	testutil.WriteFile(t, excl, "192.0.2.0/24\nnot-a-network\n198.51.100.0/24\nalso-bad\n", 0o644)
	wantNamed := []string{rules, excl + ":2", "not-a-network", excl + ":4", "also-bad"}
	if err := d.Reload(ctx); err == nil {
		t.Fatal("the reload of broken files succeeded")
	}
	var line map[string]any
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "reload rejected") {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line == nil {
		t.Fatalf("no reload rejected line in:\n%s", logs)
	}
	for _, w := range wantNamed {
		if !strings.Contains(fmt.Sprint(line["error"]), w) {
			t.Errorf("reload error does not name %q: %v", w, line["error"])
		}
	}
	if line["errors"] != 2.0 {
		t.Errorf("errors = %v, want 2 (the rules file and the exclusion file)", line["errors"])
	}

	// A start with the same files fails naming all of them too.
	_, err = loadReloadable(ctx, cfg)
	for _, w := range wantNamed {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("startup error does not name %q: %v", w, err)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
