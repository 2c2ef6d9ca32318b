//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

// Courier and Cyrus conflict with Dovecot as packages, syslog-ng with
// rsyslog. .ci/e2e-prepare installs each of them into a layer: the upper
// directory of an overlay over the host's "/". A test copies the layer into
// a fresh upper directory, mounts the overlay (in the suite's private mount
// namespace), binds the suite's private /dev into it and runs the daemon
// chrooted there. The daemon therefore logs to the same /dev/log as Dovecot
// would, and listens in the same network namespace.

func layersDir() string {
	if d := os.Getenv("RELAYGATE_E2E_LAYERS"); d != "" {
		return d
	}
	return "/var/tmp/relaygate-e2e/layers"
}

func needLayer(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(layersDir(), name)
	_, err := os.Stat(filepath.Join(dir, ".ok"))
	need(t, err == nil, "package layer %q not prepared in %s (run: sudo .ci/e2e-prepare %s)", name, dir, name)
	return filepath.Join(dir, "upper")
}

// mountLayer mounts overlay(lower=/, upper=copy of the layer) under the
// test directory and returns its root. Cleanups unmount everything.
func (s *stack) mountLayer(name string) string {
	t := s.t
	layer := needLayer(t, name)
	base := filepath.Join(s.dir, name)
	upper, work, root := filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "root")
	mkdirs(t, 0o755, base, work, root)
	// A copy, so that the prepared layer is never written to. (Stacking
	// it as a second lower directory is refused by the kernel: "/" is an
	// ancestor of the layer, which overlayfs rejects as overlapping.)
	run(t, "cp", "-a", layer, upper)
	var mounted []string
	t.Cleanup(func() {
		for i := len(mounted) - 1; i >= 0; i-- {
			if err := syscall.Unmount(mounted[i], 0); err != nil {
				if err2 := syscall.Unmount(mounted[i], syscall.MNT_DETACH); err2 != nil {
					t.Errorf("unmount %s: %v / %v", mounted[i], err, err2)
				}
			}
		}
	})
	mount := func(src, dst, fstype string, flags uintptr, data string) {
		if err := syscall.Mount(src, dst, fstype, flags, data); err != nil {
			t.Fatalf("mount %s on %s: %v", src, dst, err)
		}
		mounted = append(mounted, dst)
	}
	// Runs before the unmounts above and after the daemons' own cleanups:
	// helpers that detached on their own (Courier's imapd starts gamin's
	// gam_server) are found by their root directory and stopped by PID.
	t.Cleanup(func() { killChrooted(t, root) })
	mount("overlay", root, "overlay", 0, fmt.Sprintf("lowerdir=/,upperdir=%s,workdir=%s", upper, work))
	mount("/dev", filepath.Join(root, "dev"), "", syscall.MS_BIND|syscall.MS_REC, "")
	// MS_REC binds need their submounts detached too: make them private
	// and unmount them lazily (the cleanup falls back to MNT_DETACH).
	mount("proc", filepath.Join(root, "proc"), "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "")
	return root
}

// killChrooted stops every process whose root directory is root.
func killChrooted(t *testing.T, root string) {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 || pid == os.Getpid() {
			continue
		}
		if r, err := os.Readlink(filepath.Join("/proc", e.Name(), "root")); err == nil && r == root && pidAlive(pid) {
			comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
			t.Logf("stopping %s (pid %d), left running in %s", strings.TrimSpace(string(comm)), pid, root)
			killPID(t, strings.TrimSpace(string(comm)), pid, 5*time.Second)
		}
	}
}

// chrootCmd prepares a command to run chrooted into root.
func chrootCmd(root string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	return cmd
}

// chrootRun runs a command chrooted into root and waits for it. Output goes
// to a file, not a pipe: daemons that detach would keep a pipe open.
func chrootRun(t *testing.T, root, logPath string, name string, args ...string) {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "+ %s %v\n", name, args)
	cmd := chrootCmd(root, name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		t.Fatalf("(chroot %s) %s %v: %v\n%s", root, name, args, err, tail(logPath, 20))
	}
}

func setConfigLine(t *testing.T, path, key, value string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `=.*$`)
	if !re.Match(b) {
		t.Fatalf("%s: no %s= line", path, key)
	}
	b = re.ReplaceAll(b, []byte(key+"="+value))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------
// Courier

// startCourier runs authdaemond, pop3d and imapd from the courier layer.
// Users (made by e2e-prepare): alice/alicepw, bob/bobpw, with ~/Maildir.
func startCourier(s *stack) {
	t := s.t
	root := s.mountLayer("courier")
	out := filepath.Join(s.dir, "courier.out")
	setConfigLine(t, filepath.Join(root, "etc/courier/pop3d"), "ADDRESS", "127.0.0.1")
	setConfigLine(t, filepath.Join(root, "etc/courier/imapd"), "ADDRESS", "127.0.0.1")
	chrootRun(t, root, out, "install", "-d", "-m", "755", "/run/courier")
	chrootRun(t, root, out, "install", "-d", "-o", "daemon", "-g", "daemon", "-m", "750", "/run/courier/authdaemon")
	// Each start script detaches through courierlogger, which writes the
	// pid file; stop them by those PIDs (registered before starting).
	for _, d := range []struct{ script, pid string }{
		{"/usr/sbin/authdaemond", "run/courier/authdaemon/pid"},
		{"/usr/sbin/pop3d", "run/courier/pop3d.pid"},
		{"/usr/sbin/imapd", "run/courier/imapd.pid"},
	} {
		pidFile := filepath.Join(root, d.pid)
		name := filepath.Base(d.script)
		t.Cleanup(func() {
			if _, err := os.Stat(pidFile); err == nil {
				killPIDFile(t, "courier "+name, pidFile, 15*time.Second)
			}
		})
		chrootRun(t, root, out, d.script, "start")
		if _, ok := testutil.Poll(startupWait, 20*time.Millisecond, func() bool {
			_, err := os.Stat(pidFile)
			return err == nil
		}); !ok {
			t.Fatalf("courier %s wrote no pid file %s\n%s", name, pidFile, tail(out, 20))
		}
	}
	waitGreeting(t, "courier pop3d", pop3Addr, "+OK", 15*time.Second)
	waitGreeting(t, "courier imapd", imapAddr, "* OK", 15*time.Second)
}

// Scenario 4a: Courier POP3 and IMAP logins (logged as
// ip=[::ffff:127.0.0.x]) → rsyslog UDP → relaygate → Postfix.
func TestCourierLogins(t *testing.T) {
	needLayer(t, "courier")
	s := newStack(t, stackOpts{mailServer: startCourier})
	expectRCPT(t, "127.0.0.2", 554)
	checkFailed := failedLoginStaysDenied(t, s, pop3Login, "alice", "127.0.0.3", "127.0.0.5",
		"pop3d: LOGIN FAILED, user=alice, ip=[::ffff:127.0.0.3]")

	l := mustLogin(t, pop3Login, "127.0.0.2", "alice", "alicepw", true)
	grantedWithin(t, "127.0.0.2", l)
	waitLog(t, s.allLog, "pop3d: LOGIN, user=alice, ip=[::ffff:127.0.0.2]", 5*time.Second)
	expectInMap(t, s.mapBase, "127.0.0.2", true)

	l = mustLogin(t, imapLogin, "127.0.0.4", "bob", "bobpw", true)
	grantedWithin(t, "127.0.0.4", l)
	waitLog(t, s.allLog, "imapd: LOGIN, user=bob, ip=[::ffff:127.0.0.4]", 5*time.Second)
	expectInMap(t, s.mapBase, "127.0.0.4", true)

	checkFailed()
}

// ---------------------------------------------------------------------------
// Cyrus

const cyrusConf = `# relaygate e2e: only IMAP and POP3, on loopback
START {
	recover cmd="/usr/sbin/cyrus ctl_cyrusdb -r"
}
SERVICES {
	imap cmd="imapd -U 30" listen="127.0.0.1:143" prefork=0 maxchild=20
	pop3 cmd="pop3d -U 30" listen="127.0.0.1:110" prefork=0 maxchild=20
}
EVENTS {
	checkpoint cmd="/usr/sbin/cyrus ctl_cyrusdb -c" period=30
}
`

// startCyrus runs cyrmaster (foreground) from the cyrus layer. Users (in
// sasldb): alice/alicepw, bob/bobpw.
func startCyrus(s *stack) {
	t := s.t
	root := s.mountLayer("cyrus")
	out := filepath.Join(s.dir, "cyrus.out")
	testutil.WriteFile(t, filepath.Join(root, "etc/cyrus-e2e.conf"), cyrusConf, 0o644)
	// sasldb keys users by realm, which defaults to the host name: create
	// them here, under the suite's host name "mail".
	chrootRun(t, root, out, "sh", "-c", `set -e
rm -f /etc/sasldb2
for u in alice bob; do echo "${u}pw" | saslpasswd2 -p -c "$u"; done
chown root:sasl /etc/sasldb2
chmod 640 /etc/sasldb2`)
	for _, d := range []string{"/run/cyrus", "/run/cyrus/socket", "/run/cyrus/proc", "/run/cyrus/lock"} {
		chrootRun(t, root, out, "install", "-d", "-o", "cyrus", "-g", "mail", "-m", "750", d)
	}
	startProc(t, "cyrmaster", out, chrootCmd(root, "/usr/sbin/cyrmaster",
		"-C", "/etc/imapd.conf", "-M", "/etc/cyrus-e2e.conf", "-p", "/run/cyrus/master.pid"))
	waitGreeting(t, "cyrus imapd", imapAddr, "* OK", 20*time.Second)
	waitGreeting(t, "cyrus pop3d", pop3Addr, "+OK", 20*time.Second)
}

// Scenario 4b: Cyrus IMAP and POP3 logins → rsyslog UDP → relaygate →
// Postfix.
func TestCyrusLogins(t *testing.T) {
	needLayer(t, "cyrus")
	s := newStack(t, stackOpts{mailServer: startCyrus})
	expectRCPT(t, "127.0.0.2", 554)
	checkFailed := failedLoginStaysDenied(t, s, imapLogin, "bob", "127.0.0.3", "127.0.0.6",
		"badlogin: [127.0.0.3] plaintext (bob)")

	l := mustLogin(t, imapLogin, "127.0.0.2", "bob", "bobpw", true)
	grantedWithin(t, "127.0.0.2", l)
	waitLog(t, s.allLog, "cyrus/imap", 5*time.Second)
	expectInMap(t, s.mapBase, "127.0.0.2", true)

	// alice's INBOX is created by her first IMAP login; then POP3.
	l = mustLogin(t, imapLogin, "127.0.0.5", "alice", "alicepw", true)
	grantedWithin(t, "127.0.0.5", l)
	l = mustLogin(t, pop3Login, "127.0.0.4", "alice", "alicepw", true)
	grantedWithin(t, "127.0.0.4", l)
	waitLog(t, s.allLog, "cyrus/pop3", 5*time.Second)
	expectInMap(t, s.mapBase, "127.0.0.4", true)

	checkFailed()
}

// ---------------------------------------------------------------------------
// syslog-ng

// startSyslogNG returns a stackOpts.syslogd hook that runs syslog-ng from
// its layer with the given destination statement.
func startSyslogNG(destination string) func(s *stack) {
	return startSyslogNGWith(destination, nil)
}

// startSyslogNGWith is startSyslogNG with a prepare hook, called with the
// mounted root before syslog-ng starts (to put files into it).
func startSyslogNGWith(destination string, prepare func(s *stack, root string)) func(s *stack) {
	return func(s *stack) {
		t := s.t
		root := s.mountLayer("syslog-ng")
		if prepare != nil {
			prepare(s, root)
		}
		s.allLog = filepath.Join(root, "var/log/e2e-all.log")
		conf := fmt.Sprintf(`@version: 3.38
# relaygate e2e syslog-ng: /dev/log is the suite's private one
options { keep_hostname(yes); chain_hostnames(no); use_dns(no); use_fqdn(no); stats_freq(0); };
source s_local { unix-dgram("/dev/log"); internal(); };
destination d_relaygate { %s };
destination d_all { file("/var/log/e2e-all.log"); };
log { source(s_local); destination(d_relaygate); destination(d_all); };
`, destination)
		testutil.WriteFile(t, filepath.Join(root, "etc/syslog-ng/e2e.conf"), conf, 0o644)
		out := filepath.Join(s.dir, "syslog-ng.out")
		chrootRun(t, root, out, "/usr/sbin/syslog-ng", "--syntax-only", "-f", "/etc/syslog-ng/e2e.conf")
		startProc(t, "syslog-ng", out, chrootCmd(root, "/usr/sbin/syslog-ng", "-F", "--no-caps",
			"-f", "/etc/syslog-ng/e2e.conf", "-R", "/run/e2e.persist", "-p", "/run/e2e.pid",
			"-c", "/run/e2e.ctl"))
		waitSyslog(t, s.allLog)
	}
}

// Scenario 3: syslog-ng as the forwarder, over UDP (RFC 3164, network())
// and over TCP (RFC 5424, octet-counted, syslog()).
func TestSyslogNGForwarder(t *testing.T) {
	cases := []struct {
		name, dest string
		udp, tcp   string
	}{
		{"udp-rfc3164", `network("127.0.0.1" port(5514) transport("udp"));`, syslogUDP, syslogTCP},
		{"tcp-rfc5424-octet-counted", `syslog("127.0.0.1" port(5515) transport("tcp"));`, "-", syslogTCP},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			needLayer(t, "syslog-ng")
			s := newStack(t, stackOpts{udp: c.udp, tcp: c.tcp, syslogd: startSyslogNG(c.dest)})
			expectRCPT(t, "127.0.0.2", 554)
			checkFailed := failedLoginStaysDenied(t, s, pop3Login, "alice", "127.0.0.3", "127.0.0.4",
				"pop3-login: Disconnected: Aborted login by logging out (auth failed")
			l := mustLogin(t, pop3Login, "127.0.0.2", "alice", "alicepw", true)
			grantedWithin(t, "127.0.0.2", l)
			expectInMap(t, s.mapBase, "127.0.0.2", true)
			l = mustLogin(t, imapLogin, "127.0.0.5", "bob", "bobpw", true)
			grantedWithin(t, "127.0.0.5", l)
			checkFailed()
		})
	}
}
