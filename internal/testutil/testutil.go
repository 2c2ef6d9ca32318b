// Package testutil holds the helpers that relaygate's tests in several
// packages need: whether a test runs under CI, polling for a condition,
// asking the real Postfix about a map, and writing files. It is imported by
// tests only.
package testutil

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// InCI reports whether the tests run under CI (CI=true, 1 or yes), where a
// test that needs a real program must fail, not skip, when it is missing.
func InCI() bool {
	switch strings.ToLower(os.Getenv("CI")) {
	case "true", "1", "yes":
		return true
	}
	return false
}

// RequireProgram returns the path of a program a test needs. When it is
// missing the test fails under CI (the CI script must install it) and is
// skipped elsewhere; hint says how to install it.
func RequireProgram(t testing.TB, name, hint string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if InCI() {
			t.Fatalf("%s not installed (%s): %v", name, hint, err)
		}
		t.Skipf("%s not installed (%s)", name, hint)
	}
	return path
}

// Poll calls cond every interval until it holds or timeout passes, and
// returns the time it first held.
func Poll(timeout, interval time.Duration, cond func() bool) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return time.Now(), true
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(interval)
	}
}

// EventuallyFloor is the least Eventually waits before it fails a test.
// Its within is what the condition normally needs; on a loaded CI machine
// (two cores, every package's race-built tests at once, postmap started
// on each poll) that can be several times longer without anything being
// wrong, so within only says when to log that it was slow. Latency is
// measured by benchmarks, not asserted here.
const EventuallyFloor = 20 * time.Second

// Eventually fails the test unless cond holds within the given time, or
// EventuallyFloor if that is longer; what names the condition in the
// failure. Holding later than within is logged.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	at, ok := Poll(max(within, EventuallyFloor), 20*time.Millisecond, cond)
	if !ok {
		t.Fatalf("not within %s: %s", max(within, EventuallyFloor), what)
	}
	if took := at.Sub(start); took > within {
		t.Logf("slow: %s held after %s, more than the %s it normally needs", what, took.Round(time.Millisecond), within)
	}
}

// PostmapQuery looks key up in cdb:mapBase with the real postmap and
// returns the value and whether the key was found. configDir, if not
// empty, is given as postmap -c (a test's own main.cf; the host's may not
// exist). Any failure other than "not found" fails the test.
func PostmapQuery(t testing.TB, configDir, mapBase, key string) (string, bool) {
	t.Helper()
	postmap := RequireProgram(t, "postmap", "apt-get install postfix postfix-cdb")
	args := []string{}
	if configDir != "" {
		args = append(args, "-c", configDir)
	}
	args = append(args, "-q", key, "cdb:"+strings.TrimSuffix(mapBase, ".cdb"))
	cmd := exec.Command(postmap, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return strings.TrimSpace(string(out)), true
	case errors.As(err, &ee) && ee.ExitCode() == 1 && stderr.Len() == 0:
		return "", false
	default:
		t.Fatalf("postmap %s: %v: %s", strings.Join(args, " "), err, stderr.String())
		return "", false
	}
}

// WriteFile writes content to path with mode, creating its directory, and
// fails the test on error.
func WriteFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	// The umask may have taken bits the test asked for.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// FileContains reports whether the file at path exists and contains s.
func FileContains(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, []byte(s))
}
