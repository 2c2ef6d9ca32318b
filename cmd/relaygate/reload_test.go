package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/internal/testutil/sendtest"
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
	testutil.WriteFile(t, excl, "# nothing excluded yet\n", 0o644)
	testutil.WriteFile(t, rules, "rules:\n  - name: other\n    programs: [otherd]\n    regex: '^ok (?P<addr>\\S+)'\n", 0o644)
	p := startProc(t, "-map", mapPath, "-flush", "50ms", "-exclude-file", excl, "-rules", rules)

	sendtest.UDP(t, p.udp, fmt.Sprintf(dovecotLogin, "192.0.2.10"), fmt.Sprintf(dovecotLogin, "198.51.100.10"))
	testutil.Eventually(t, 2*time.Second, "logins granted", func() bool {
		return sendtest.InMap(t, mapPath, "192.0.2.10") && sendtest.InMap(t, mapPath, "198.51.100.10")
	})
	// A line no parser handles yet, then a login behind it on the same
	// socket: once that is granted, the first was handled before the reload.
	sendtest.UDP(t, p.udp, fmt.Sprintf(mypopLogin, "203.0.113.1"), fmt.Sprintf(dovecotLogin, "198.51.100.11"))
	testutil.Eventually(t, 2*time.Second, "the login behind the unknown line granted", func() bool { return sendtest.InMap(t, mapPath, "198.51.100.11") })

	// New exclusions and a new rule.
	testutil.WriteFile(t, excl, "192.0.2.0/24   # shared NAT\n", 0o644)
	example, err := os.ReadFile("../../examples/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, rules, string(example), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.Eventually(t, 2*time.Second, "newly excluded grant removed", func() bool { return !sendtest.InMap(t, mapPath, "192.0.2.10") })
	if !sendtest.InMap(t, mapPath, "198.51.100.10") {
		t.Fatal("reload dropped a grant outside the new exclusions")
	}
	sendtest.UDP(t, p.udp, fmt.Sprintf(mypopLogin, "203.0.113.2"), fmt.Sprintf(dovecotLogin, "192.0.2.11"))
	testutil.Eventually(t, 2*time.Second, "login matched by the reloaded rule", func() bool { return sendtest.InMap(t, mapPath, "203.0.113.2") })
	if sendtest.InMap(t, mapPath, "192.0.2.11") || sendtest.InMap(t, mapPath, "203.0.113.1") {
		t.Fatal("excluded login granted, or a line granted before its rule existed")
	}

	// A broken file is rejected; the running configuration stays.
	testutil.WriteFile(t, excl, "192.0.2.0/24\nnot-a-network\n", 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.Eventually(t, 2*time.Second, "reload rejected", func() bool { return strings.Contains(p.log(), "reload rejected") })
	if !strings.Contains(p.log(), "not-a-network") || !strings.Contains(p.log(), excl+":2") {
		t.Errorf("rejection does not name the file, line and entry:\n%s", p.log())
	}
	sendtest.UDP(t, p.udp, fmt.Sprintf(dovecotLogin, "192.0.2.12"), fmt.Sprintf(dovecotLogin, "198.51.100.12"))
	testutil.Eventually(t, 2*time.Second, "granting goes on", func() bool { return sendtest.InMap(t, mapPath, "198.51.100.12") })
	if sendtest.InMap(t, mapPath, "192.0.2.12") {
		t.Fatal("the old exclusions were dropped by a rejected reload")
	}
	if !sendtest.InMap(t, mapPath, "198.51.100.10") || !sendtest.InMap(t, mapPath, "203.0.113.2") {
		t.Fatal("grants lost across reloads")
	}
}
