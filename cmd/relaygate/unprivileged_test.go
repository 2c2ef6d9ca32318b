package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/internal/grants"
	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/internal/testutil/sendtest"
)

const nobody = 65534 // nobody:nogroup on Debian

// TestRunsUnprivileged runs relaygate as nobody:nogroup with only its data
// directory writable: it receives on loopback, publishes a map Postfix
// reads, and fails at startup with one clear line when the map's directory
// is not writable.
func TestRunsUnprivileged(t *testing.T) {
	requireRoot(t)
	postmap := lookPostmap(t)

	// t.TempDir and the go build cache are 0700 root: nobody could not even
	// execute the test binary there.
	top, exe := unprivilegedTop(t, "relaygate-unprivileged-")
	data := filepath.Join(top, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	cred := &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}
	mapPath := filepath.Join(data, "pbs.cdb")

	p := startProcAs(t, exe, cred, "-map", mapPath, "-flush", "50ms")
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "Uid:") || strings.HasPrefix(line, "Gid:") || strings.HasPrefix(line, "Groups:") || strings.HasPrefix(line, "CapEff:") {
			t.Logf("relaygate %s", strings.Join(strings.Fields(line), " "))
		}
		if strings.HasPrefix(line, "Uid:") && strings.Fields(line)[2] != strconv.Itoa(nobody) {
			t.Fatalf("relaygate runs as %s, want uid %d", line, nobody)
		}
		if strings.HasPrefix(line, "CapEff:") && strings.Fields(line)[1] != "0000000000000000" {
			t.Errorf("relaygate has capabilities: %s", line)
		}
	}
	t.Logf("listening on udp %s, tcp %s", p.udp, p.tcp)
	sendtest.UDP(t, p.udp, loginLine("192.0.2.10"))
	sendtest.TCP(t, p.tcp, loginLine("192.0.2.11")+"\n")
	testutil.Eventually(t, 5*time.Second, "logins in the map written by nobody", func() bool {
		return sendtest.InMap(t, mapPath, "192.0.2.10") && sendtest.InMap(t, mapPath, "192.0.2.11")
	})
	checkMapWithPostmap(t, postmap, mapPath, []string{"192.0.2.10", "192.0.2.11"})
	if code := p.stop(t, syscall.SIGTERM, 5*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	for _, f := range []string{mapPath, filepath.Join(data, "pbs.state")} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != nobody {
			t.Errorf("%s is owned by uid %d, want %d", f, st.Uid, nobody)
		}
		t.Logf("%s %v uid %d", filepath.Base(f), fi.Mode(), st.Uid)
	}

	// A map in a directory nobody cannot write: a clear one-line startup error.
	badMap := filepath.Join(top, "pbs.cdb")
	code, stderr, started := runOnce(t, exe, cred, "-map", badMap)
	if started {
		t.Fatalf("relaygate started with a map in a directory it cannot write")
	}
	// Log lines (JSON) may come first, e.g. the warning that an
	// unprivileged process gets a smaller UDP buffer; the error itself is
	// the one plain line.
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !strings.HasPrefix(l, "{") {
			lines = append(lines, l)
		}
	}
	switch {
	case code == 0:
		t.Errorf("exit code 0, want a failure")
	case len(lines) != 1:
		t.Errorf("startup error has %d lines, want one:\n%s", len(lines), stderr)
	case !strings.Contains(lines[0], badMap):
		t.Errorf("startup error does not name the map %s: %s", badMap, lines[0])
	case !strings.Contains(lines[0], "permission denied"):
		t.Errorf("startup error does not give the cause: %s", lines[0])
	}
	t.Logf("map in a root-owned 0755 directory: exit %d: %s", code, strings.TrimSpace(stderr))
	if _, err := os.Stat(badMap); err == nil {
		t.Errorf("%s was created", badMap)
	}
}

// unprivilegedTop makes a world-readable directory outside t.TempDir and
// the go build cache (both 0700 root) and copies the test binary into it,
// so that nobody can run it; it is removed when the test ends.
func unprivilegedTop(t *testing.T, pattern string) (top, exe string) {
	t.Helper()
	top, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	exe = filepath.Join(top, "relaygate.test")
	copyExecutable(t, exe)
	return top, exe
}

// copyExecutable copies the running test binary to dst, mode 0755.
func copyExecutable(t *testing.T, dst string) {
	t.Helper()
	src, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, bufio.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestStateUnreadableRefusesToStart: relaygate running unprivileged finds
// a state file it cannot read (root's, 0600). It must refuse to start,
// naming the file and the fix, and leave the map exactly as it was; it used
// to publish an empty map over every grant.
func TestStateUnreadableRefusesToStart(t *testing.T) {
	requireRoot(t)
	top, exe := unprivilegedTop(t, "relaygate-unreadable-")
	data := filepath.Join(top, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	mapPath, statePath := filepath.Join(data, "pbs.cdb"), filepath.Join(data, "pbs.state")
	var saved []grants.Grant
	for i := range 50 {
		saved = append(saved, grants.Grant{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), Expires: time.Now().Add(time.Hour)})
	}
	if err := cdbwriter.WriteMap(mapPath, saved); err != nil {
		t.Fatal(err)
	}
	if err := cdbwriter.SaveState(statePath, saved); err != nil { // 0600, root's
		t.Fatal(err)
	}
	if err := os.Chown(data, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(mapPath)
	cred := &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}
	code, stderr, started := runOnce(t, exe, cred, "-map", mapPath)
	if started || code == 0 {
		t.Fatalf("relaygate started with a state file it cannot read (exit %d):\n%s", code, stderr)
	}
	if !strings.Contains(stderr, statePath) || !strings.Contains(stderr, "permission denied") || !strings.Contains(stderr, "fix:") {
		t.Errorf("the error does not name the state file, the cause and the fix:\n%s", stderr)
	}
	if after, _ := os.ReadFile(mapPath); !bytes.Equal(before, after) {
		t.Fatal("the map changed although relaygate refused to start")
	}
	if n := tempLeftovers(t, data); n > 0 {
		t.Errorf("%d temporary files left", n)
	}
}
