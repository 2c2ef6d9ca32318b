//go:build e2e

// Package e2e runs relaygate against real daemons: rsyslog (or syslog-ng)
// receives the login lines of a real Dovecot, Courier or Cyrus through
// /dev/log and forwards them to relaygate, which writes the cdb map that a
// real Postfix smtpd consults with check_client_access.
//
// Run it as root:
//
//	go test -tags e2e -v -count=1 -timeout 30m ./e2e/
//
// The test binary re-executes itself under
// `unshare --mount --net --uts --pid --fork --mount-proc`:
//
//   - stage "outer" (the process go test started): builds relaygate, creates
//     the suite directory, runs the namespace, removes the directory at the end;
//   - stage "init" (PID 1 of the new pid namespace): brings up lo, sets the
//     host name, mounts a private /dev (so /dev/log belongs to the suite's
//     syslog daemon), starts stage "tests" and reaps orphaned daemons;
//   - stage "tests": the ordinary `testing` run.
//
// Nothing can leave the machine: the network namespace has only lo.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

const (
	envStage  = "RELAYGATE_E2E_STAGE"
	envRoot   = "RELAYGATE_E2E_ROOT"   // suite directory, created by stage outer
	envBinary = "RELAYGATE_E2E_BINARY" // optional: use this relaygate binary instead of building one
	envKeep   = "RELAYGATE_E2E_KEEP"   // "1": keep the suite directory (for debugging)
)

// suiteRoot is the suite's directory (0755, under $TMPDIR); every test gets
// a subdirectory. relaygateBin is the binary under test.
var (
	suiteRoot    string
	relaygateBin string
)

func TestMain(m *testing.M) {
	switch os.Getenv(envStage) {
	case "":
		os.Exit(outerMain())
	case "init":
		os.Exit(initMain())
	case "tests":
		suiteRoot = os.Getenv(envRoot)
		relaygateBin = filepath.Join(suiteRoot, "bin", "relaygate")
		os.Exit(m.Run())
	default:
		fmt.Fprintf(os.Stderr, "e2e: bad %s=%q\n", envStage, os.Getenv(envStage))
		os.Exit(2)
	}
}

// outerMain runs in the caller's namespaces.
func outerMain() int {
	bail := func(format string, args ...any) int {
		msg := fmt.Sprintf(format, args...)
		if testutil.InCI() {
			fmt.Fprintf(os.Stderr, "FAIL e2e: %s (CI=true: a missing prerequisite is a failure)\n", msg)
			return 1
		}
		fmt.Fprintf(os.Stderr, "SKIP e2e: %s\n", msg)
		return 0
	}
	if os.Geteuid() != 0 {
		return bail("the end-to-end suite must run as root (it needs mount/net/pid namespaces and starts Postfix, Dovecot and rsyslogd)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		return bail("unshare(1) not found (package util-linux)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return bail("ip(8) not found (package iproute2)")
	}

	root, err := os.MkdirTemp("", "relaygate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	// The daemons run as dovecot, postfix, nobody, cyrus …: they must be
	// able to reach their directories.
	if err := os.Chmod(root, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	keep := os.Getenv(envKeep) == "1"
	defer func() {
		if keep {
			fmt.Fprintf(os.Stderr, "e2e: kept %s\n", root)
			return
		}
		// The namespace is gone, so nothing is mounted under root any
		// more (mount propagation is private); removing is safe.
		if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(mi), root) {
			fmt.Fprintf(os.Stderr, "e2e: LEAK: something is mounted under %s; not removing it\n", root)
			return
		}
		if err := os.RemoveAll(root); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: cleanup:", err)
		}
	}()

	bin := filepath.Join(root, "bin", "relaygate")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if src := os.Getenv(envBinary); src != "" {
		out, err := exec.Command("cp", src, bin).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: copying %s: %v\n%s", src, err, out)
			return 1
		}
	} else {
		// Build outside the namespace: the module cache may need the network.
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/relaygate")
		cmd.Dir = ".." // go test runs in the package directory
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL e2e: go build ./cmd/relaygate: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "e2e: built relaygate in %v\n", time.Since(start).Round(time.Millisecond))
	}

	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	args := append([]string{"--mount", "--net", "--uts", "--pid", "--fork", "--mount-proc",
		"--propagation", "private", exe}, os.Args[1:]...)
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), envStage+"=init", envRoot+"="+root)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	// Forward ^C / SIGTERM to the namespace's init, which passes it on.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: unshare:", err)
		return 1
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return 0
}

// withEnv returns env with kv ("NAME=value") set, replacing any previous
// NAME (os.StartProcess, unlike os/exec, does not drop duplicates, and the
// first one wins).
func withEnv(env []string, kv string) []string {
	name := kv[:strings.IndexByte(kv, '=')+1]
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if !strings.HasPrefix(e, name) {
			out = append(out, e)
		}
	}
	return append(out, kv)
}

// initMain is PID 1 of the suite's pid namespace.
func initMain() int {
	runtime.LockOSThread() // mounts and sethostname are per process; keep it simple
	if os.Getpid() != 1 {
		fmt.Fprintf(os.Stderr, "e2e init: expected to be PID 1 of a new pid namespace, am %d\n", os.Getpid())
		return 1
	}
	root := os.Getenv(envRoot)
	if err := setupNamespace(root); err != nil {
		fmt.Fprintln(os.Stderr, "e2e init: namespace setup:", err)
		return 1
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e init:", err)
		return 1
	}
	env := withEnv(os.Environ(), envStage+"=tests")
	child, err := os.StartProcess(exe, append([]string{exe}, os.Args[1:]...), &os.ProcAttr{
		Env:   env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e init:", err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		for s := range sigs {
			_ = child.Signal(s)
		}
	}()
	// Reap everything: the test process and any daemon that double-forked
	// and was re-parented to us.
	code := 1
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			break
		}
		if pid == child.Pid {
			switch {
			case ws.Exited():
				code = ws.ExitStatus()
			case ws.Signaled():
				fmt.Fprintf(os.Stderr, "e2e init: test process killed by %v\n", ws.Signal())
				code = 1
			}
			break
		}
	}
	// Every daemon should have been stopped by PID already. Report (and
	// kill) whatever is left, so that a leak is visible in the CI log.
	if left := leftovers(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "e2e init: LEAK: processes left in the namespace: %s\n", strings.Join(left, ", "))
		_ = syscall.Kill(-1, syscall.SIGKILL)
		for {
			if _, err := syscall.Wait4(-1, nil, 0, nil); err == syscall.ECHILD {
				break
			}
		}
		if code == 0 {
			code = 3
		}
	}
	return code
}

// leftovers lists the processes other than ourselves in the pid namespace.
func leftovers() []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		out = append(out, fmt.Sprintf("%d(%s)", pid, strings.TrimSpace(string(comm))))
	}
	return out
}

// setupNamespace brings lo up, names the host "mail" and mounts a private
// /dev that contains only the few device nodes the daemons need.
func setupNamespace(root string) error {
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("ip link set lo up: %v: %s", err, out)
	}
	if err := syscall.Sethostname([]byte("mail")); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	// Build the new /dev on a staging mount point, then move it over /dev.
	stage := filepath.Join(root, "dev")
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", stage, "tmpfs", syscall.MS_NOSUID, "mode=755,size=16m"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", stage, err)
	}
	for _, n := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		dst := filepath.Join(stage, n)
		if err := os.WriteFile(dst, nil, 0o666); err != nil {
			return err
		}
		if err := syscall.Mount("/dev/"+n, dst, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", n, err)
		}
	}
	for _, d := range []string{"pts", "shm"} {
		if err := os.Mkdir(filepath.Join(stage, d), 0o755); err != nil {
			return err
		}
	}
	if err := syscall.Mount("/dev/pts", filepath.Join(stage, "pts"), "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind /dev/pts: %w", err)
	}
	if err := syscall.Mount("tmpfs", filepath.Join(stage, "shm"), "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=1777"); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	for name, target := range map[string]string{
		"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
		"stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx",
	} {
		if err := os.Symlink(target, filepath.Join(stage, name)); err != nil {
			return err
		}
	}
	if err := syscall.Mount(stage, "/dev", "", syscall.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /dev: %w", stage, err)
	}
	return nil
}
