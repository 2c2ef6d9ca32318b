package cdbwriter

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/grants"
)

// TestCatchUpIsInTheFirstMap: what Config.CatchUp applies at start (a
// fleet's active grants) is in the very first map, and already in the
// state file when Postfix can first see it; an excluded address is not.
func TestCatchUpIsInTheFirstMap(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	calls := 0
	cfg.CatchUp = func(apply func(grants.Event)) {
		calls++
		for _, a := range []string{"192.0.2.10", "192.0.2.11", "203.0.113.5"} {
			apply(grants.Event{Kind: grants.EventLogin, Grant: grant(a), At: t0.Add(-time.Minute)})
		}
	}
	startService(t, cfg, grants.TableConfig{Grace: time.Hour, Exclude: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}})
	if calls != 1 {
		t.Fatalf("CatchUp called %d times", calls)
	}
	if keys := mapKeys(t, dir); !slices.Equal(keys, []string{"192.0.2.10", "192.0.2.11"}) {
		t.Fatalf("first map %v", keys)
	}
	gs, err := LoadState(filepath.Join(dir, "pbs.state"))
	if err != nil || len(gs) != 2 {
		t.Fatalf("state after start: %v %v", gs, err)
	}
	for _, g := range gs {
		if want := t0.Add(-time.Minute).Add(time.Hour); !g.Expires.Equal(want) {
			t.Errorf("%s expires %s, want %s (grace from the event's own time)", g.Addr, g.Expires, want)
		}
	}
}

// TestCatchUpLogsOneLine: a catch-up's logins are logged at debug level
// and summed up in one info line, since a fleet replays tens of
// thousands; a login after it is logged at info as ever.
func TestCatchUpLogsOneLine(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	cfg := testConfig(t, dir, &logs)
	cfg.CatchUp = func(apply func(grants.Event)) {
		for _, a := range []string{"192.0.2.10", "192.0.2.11", "192.0.2.10"} {
			apply(grants.Event{Kind: grants.EventLogin, Grant: grant(a), At: t0.Add(-time.Minute)})
		}
	}
	svc := startService(t, cfg, grants.TableConfig{Grace: time.Hour})
	svc.apply(grants.Event{Kind: grants.EventLogin, Grant: grant("192.0.2.12"), At: t0})
	var infoGrants, summaries int
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var e struct{ Level, Message, Addr string }
		var n struct{ Granted, Extended, Active int }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		switch {
		case e.Message == "granted" && e.Level == "info":
			infoGrants++
			if e.Addr != "192.0.2.12" {
				t.Errorf("a caught-up login logged at info: %s", line)
			}
		case strings.HasPrefix(e.Message, "catch-up applied"):
			summaries++
			_ = json.Unmarshal([]byte(line), &n)
			if e.Level != "info" || n.Granted != 2 || n.Extended != 1 || n.Active != 2 {
				t.Errorf("summary %s, want info, granted 2, extended 1, active 2", line)
			}
		}
	}
	if infoGrants != 1 || summaries != 1 {
		t.Fatalf("%d info grant lines, %d summaries; want 1 and 1:\n%s", infoGrants, summaries, logs.String())
	}
}
