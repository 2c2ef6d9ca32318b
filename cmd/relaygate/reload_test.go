package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

const mypopLogin = "<22>Nov 21 10:00:00 mx1 mypop3d[5]: auth ok: user=dave client=%s conn=1"

// TestSIGHUPReloadsExclusionsAndRules: a reload applies a new exclusion file
// (removing grants inside it) and new rules, keeps every other grant, and a
// bad file is rejected with the old configuration kept.
func TestSIGHUPReloadsExclusionsAndRules(t *testing.T) {
	dir := t.TempDir()
	mapPath := filepath.Join(dir, "pbs.cdb")
	excl := filepath.Join(dir, "exclude")
	rules := filepath.Join(dir, "rules.yaml")
	writeTestFile(t, excl, "# nothing excluded yet\n")
	writeTestFile(t, rules, "rules:\n  - name: other\n    programs: [otherd]\n    regex: '^ok (?P<addr>\\S+)'\n")
	p := startProc(t, "-map", mapPath, "-flush", "50ms", "-exclude-file", excl, "-rules", rules)

	sendUDP(t, p.udp, fmt.Sprintf(dovecotLogin, "192.0.2.10"), fmt.Sprintf(dovecotLogin, "198.51.100.10"))
	waitFor(t, 2*time.Second, "logins granted", func() bool {
		return postmapQuery(t, mapPath, "192.0.2.10") && postmapQuery(t, mapPath, "198.51.100.10")
	})
	sendUDP(t, p.udp, fmt.Sprintf(mypopLogin, "203.0.113.1"))

	// New exclusions and a new rule.
	writeTestFile(t, excl, "192.0.2.0/24   # shared NAT\n")
	example, err := os.ReadFile("../../examples/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, rules, string(example))
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 2*time.Second, "newly excluded grant removed", func() bool { return !postmapQuery(t, mapPath, "192.0.2.10") })
	if !postmapQuery(t, mapPath, "198.51.100.10") {
		t.Fatal("reload dropped a grant outside the new exclusions")
	}
	sendUDP(t, p.udp, fmt.Sprintf(mypopLogin, "203.0.113.2"), fmt.Sprintf(dovecotLogin, "192.0.2.11"))
	waitFor(t, 2*time.Second, "login matched by the reloaded rule", func() bool { return postmapQuery(t, mapPath, "203.0.113.2") })
	if postmapQuery(t, mapPath, "192.0.2.11") || postmapQuery(t, mapPath, "203.0.113.1") {
		t.Fatal("excluded login granted, or a line granted before its rule existed")
	}

	// A broken file is rejected; the running configuration stays.
	writeTestFile(t, excl, "192.0.2.0/24\nnot-a-network\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 2*time.Second, "reload rejected", func() bool { return strings.Contains(p.log(), "reload rejected") })
	if !strings.Contains(p.log(), "not-a-network") || !strings.Contains(p.log(), excl+":2") {
		t.Errorf("rejection does not name the file, line and entry:\n%s", p.log())
	}
	sendUDP(t, p.udp, fmt.Sprintf(dovecotLogin, "192.0.2.12"), fmt.Sprintf(dovecotLogin, "198.51.100.12"))
	waitFor(t, 2*time.Second, "granting goes on", func() bool { return postmapQuery(t, mapPath, "198.51.100.12") })
	if postmapQuery(t, mapPath, "192.0.2.12") {
		t.Fatal("the old exclusions were dropped by a rejected reload")
	}
	if !postmapQuery(t, mapPath, "198.51.100.10") || !postmapQuery(t, mapPath, "203.0.113.2") {
		t.Fatal("grants lost across reloads")
	}
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A reload (and a start) with a broken rules file and a broken exclusion
// file names every error, each bad exclusion line included, in one log
// line; before, only the first failure was named, so fixing a file and
// sending SIGHUP again revealed the next one.
func TestReloadNamesEveryError(t *testing.T) {
	dir := t.TempDir()
	excl := filepath.Join(dir, "exclude")
	rules := filepath.Join(dir, "rules.yaml")
	writeTestFile(t, excl, "192.0.2.0/24\n")
	writeTestFile(t, rules, "rules:\n  - name: other\n    programs: [otherd]\n    regex: '^ok (?P<addr>\\S+)'\n")
	cfg, err := parseServeFlags([]string{
		"-udp", "127.0.0.1:0", "-tcp", "", "-mynetworks", "none",
		"-map", filepath.Join(dir, "pbs.cdb"), "-exclude-file", excl, "-rules", rules,
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logs := new(syncBuffer)
	ctx, cancel := context.WithCancel(context.Background())
	d, err := newDaemon(ctx, cfg, zerolog.New(logs), time.Now)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	defer func() { cancel(); <-done }()

	writeTestFile(t, rules, "rules:\n  - name: broken\n    programs: [otherd]\n    regex: '(?P<addr>'\n")
	writeTestFile(t, excl, "192.0.2.0/24\nnot-a-network\n198.51.100.0/24\nalso-bad\n")
	wantNamed := []string{rules, excl + ":2", "not-a-network", excl + ":4", "also-bad"}
	d.reload(ctx)
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
