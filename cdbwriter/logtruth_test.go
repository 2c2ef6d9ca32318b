package cdbwriter

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/grants"
)

// TestWriteFailureMessagesSayWhatIsTrue: with the disk full (here: the
// directories gone), every message about a failed write must be true in
// both outcomes of the other write (issue 11, point 13). It used to say
// "grants still reach Postfix" while the map writes failed as well.
func TestWriteFailureMessagesSayWhatIsTrue(t *testing.T) {
	dir := t.TempDir()
	mapDir, stateDir := filepath.Join(dir, "map"), filepath.Join(dir, "state")
	os.Mkdir(mapDir, 0o755)
	os.Mkdir(stateDir, 0o755)
	var log bytes.Buffer
	cfg := testConfig(t, dir, &log)
	cfg.MapPath, cfg.StatePath = filepath.Join(mapDir, "pbs.cdb"), filepath.Join(stateDir, "pbs.state")
	svc := startService(t, cfg, grants.TableConfig{Grace: time.Hour})
	messages := func() []string {
		var out []string
		for _, line := range strings.Split(strings.TrimSpace(log.String()), "\n") {
			var ev struct{ Level, Message string }
			if json.Unmarshal([]byte(line), &ev) == nil && (ev.Level == "error" || ev.Level == "warn" || strings.Contains(ev.Message, "again")) {
				out = append(out, ev.Message)
			}
		}
		log.Reset()
		return out
	}
	away := func(d string) { os.Rename(d, d+".away") }
	back := func(d string) { os.Rename(d+".away", d) }
	at := t0
	step := func(addr string) []string {
		at = at.Add(time.Minute)
		svc.login(grant(addr), "", at)
		svc.tick(at)
		return messages()
	}

	// Both fail: nothing may claim that Postfix sees the grant, or that a
	// restart keeps it.
	away(mapDir)
	away(stateDir)
	msgs := step("192.0.2.1")
	if len(msgs) < 2 {
		t.Fatalf("both writes failed, logged %q", msgs)
	}
	for _, m := range msgs {
		if strings.Contains(m, "still reach Postfix") || strings.Contains(m, "restart keeps") {
			t.Errorf("with both writes failing, logged %q", m)
		}
	}
	if !containsAny(msgs, "state write is failing too") {
		t.Errorf("the map failure does not say the state is failing too: %q", msgs)
	}

	// Only the map fails: the grant is on disk, and the message says so.
	back(stateDir)
	msgs = step("192.0.2.2")
	if !containsAny(msgs, "which the state file has, so a restart keeps them") {
		t.Errorf("map failing, state fine: logged %q", msgs)
	}

	// Only the state fails: it must not say the map is fine or not, and
	// the map's recovery is said.
	away(stateDir)
	back(mapDir)
	msgs = step("192.0.2.3")
	if !containsAny(msgs, "map write succeeded again") {
		t.Errorf("the map's recovery was not logged: %q", msgs)
	}
	for _, m := range msgs {
		if strings.Contains(m, "map write failed") {
			t.Errorf("with the map fine, logged %q", m)
		}
	}
}

func containsAny(msgs []string, s string) bool {
	for _, m := range msgs {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}
