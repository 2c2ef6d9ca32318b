//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

// stack is one test's set of daemons: Postfix, relaygate, a syslog daemon
// and (usually) Dovecot, all with configs and spool under dir.
type stack struct {
	t          *testing.T
	dir        string
	postfixDir string // Postfix config directory (main.cf, master.cf)
	mapBase    string // what main.cf names: cdb:<mapBase>
	mapPath    string // mapBase + ".cdb", relaygate's -map
	statePath  string
	allLog     string // everything the syslog daemon received, for barriers and debugging
	rgLog      string
	rgArgs     []string
	rgEnv      []string // relaygate's environment; nil: the suite's
	rg         *proc
}

type stackOpts struct {
	// relaygate
	udp, tcp   string   // listener addresses; "" disables (default: syslogUDP, syslogTCP)
	grace      string   // default 30m
	flush      string   // default 1s
	mynetworks string   // default "auto" (asks postconf)
	extraArgs  []string // appended to relaygate's command line
	// rsyslog forwarding actions; default "*.* @127.0.0.1:5514" (UDP, legacy format)
	forward string
	// syslogd, when set, starts the syslog daemon instead of rsyslog
	// (syslog-ng); it must make s.allLog receive every message.
	syslogd func(s *stack)
	// mailServer, when set, starts the POP3/IMAP server instead of Dovecot
	// (Courier, Cyrus).
	mailServer func(s *stack)
	// beforeRelaygate, when set, runs before relaygate starts (journald,
	// which relaygate -journal reads from its start).
	beforeRelaygate func(s *stack)
}

func newStack(t *testing.T, o stackOpts) *stack {
	t.Helper()
	needPostfix(t)
	if o.syslogd == nil {
		needFile(t, "/usr/sbin/rsyslogd", "apt-get install rsyslog")
	}
	if o.mailServer == nil {
		needHostDaemons(t)
	}
	needFile(t, relaygateBin, "relaygate binary")
	dir := testDir(t)
	s := &stack{
		t:         t,
		dir:       dir,
		mapBase:   filepath.Join(dir, "map", "pbs"),
		statePath: filepath.Join(dir, "map", "pbs.state"),
		allLog:    filepath.Join(dir, "syslog", "all.log"),
		rgLog:     filepath.Join(dir, "relaygate.log"),
	}
	s.mapPath = s.mapBase + ".cdb"
	mkdirs(t, 0o755, filepath.Join(dir, "map"), filepath.Join(dir, "syslog"))
	t.Cleanup(func() { // s.allLog may be changed by a syslogd hook
		if t.Failed() {
			for _, l := range []string{s.allLog, s.rgLog} {
				t.Logf("---- last lines of %s ----\n%s", l, tail(l, 60))
			}
		}
	})

	s.writePostfixConfig()
	if o.udp == "" && o.tcp == "" {
		o.udp, o.tcp = syslogUDP, syslogTCP
	}
	if o.udp == "-" {
		o.udp = ""
	}
	if o.tcp == "-" {
		o.tcp = ""
	}
	if o.grace == "" {
		o.grace = "30m"
	}
	if o.flush == "" {
		o.flush = "1s"
	}
	if o.mynetworks == "" {
		o.mynetworks = "auto"
	}
	s.rgArgs = []string{"serve",
		"-udp", o.udp, "-tcp", o.tcp,
		"-map", s.mapPath, "-state", s.statePath,
		"-grace", o.grace, "-flush", o.flush,
		"-allow", "127.0.0.0/8,::1",
		"-mynetworks", o.mynetworks, "-postfix-config", s.postfixDir,
		"-log-level", "info", "-log-format", "json",
	}
	s.rgArgs = append(s.rgArgs, o.extraArgs...)
	// Order: relaygate's listeners before the syslog daemon (rsyslog drops
	// lines for a TCP target that refused its first connection); the
	// syslog daemon before Postfix, whose commands report errors only
	// through syslog.
	if o.beforeRelaygate != nil {
		o.beforeRelaygate(s)
	}
	s.startRelaygate(o.tcp)
	if o.syslogd != nil {
		o.syslogd(s)
	} else {
		fwd := o.forward
		if fwd == "" {
			fwd = "*.* @" + syslogUDP
		}
		s.startRsyslog(fwd)
	}
	s.startPostfix()
	if o.mailServer != nil {
		o.mailServer(s)
	} else {
		s.startDovecot()
	}
	return s
}

// ---------------------------------------------------------------------------
// Postfix

const postfixMasterCf = `# relaygate e2e: nothing chrooted, smtpd only on loopback
%s inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
`

func (s *stack) writePostfixConfig() {
	t := s.t
	s.postfixDir = filepath.Join(s.dir, "postfix", "etc")
	spool := filepath.Join(s.dir, "postfix", "spool")
	data := filepath.Join(s.dir, "postfix", "data")
	mkdirs(t, 0o755, s.postfixDir, filepath.Join(s.dir, "postfix"))
	mainCf := fmt.Sprintf(`# relaygate e2e Postfix instance
compatibility_level = 3.6
queue_directory = %s
data_directory = %s
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.pbs.test
mydomain = pbs.test
myorigin = $myhostname
mydestination = pbs.test, mail.pbs.test, localhost
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
# nothing is ever delivered
default_transport = discard
relay_transport = discard
local_transport = discard
local_recipient_maps =
alias_maps =
alias_database =
biff = no
smtpd_banner = $myhostname ESMTP relaygate-e2e
# Every accepted RCPT makes smtpd open a queue file, but the suite never
# sends a message, so qmgr hands out no flow-control tokens and after a few
# dozen sessions smtpd would pause in_flow_delay (1s) before answering 250.
in_flow_delay = 0
smtpd_relay_restrictions =
smtpd_recipient_restrictions = permit_mynetworks, check_client_access cdb:%s, reject_unauth_destination
`, spool, data, s.mapBase)
	testutil.WriteFile(t, filepath.Join(s.postfixDir, "main.cf"), mainCf, 0o644)
	testutil.WriteFile(t, filepath.Join(s.postfixDir, "master.cf"), fmt.Sprintf(postfixMasterCf, smtpAddr), 0o644)
}

func (s *stack) startPostfix() {
	t := s.t
	spool := filepath.Join(s.dir, "postfix", "spool")
	mkdirs(t, 0o755, spool) // root-owned, like /var/spool/postfix
	// "postfix check" creates the queue and data directories with the
	// right owners (a root-owned data_directory makes master fail).
	run(t, "postfix", "-c", s.postfixDir, "check")
	run(t, "postfix", "-c", s.postfixDir, "start")
	pidFile := filepath.Join(spool, "pid", "master.pid")
	t.Cleanup(func() {
		// postfix stop would do the same: SIGTERM to the master's PID; the
		// master takes its children with it.
		killPIDFile(t, "postfix master", pidFile, 15*time.Second)
	})
	waitGreeting(t, "postfix smtpd", smtpAddr, "220 ", 20*time.Second)
}

// ---------------------------------------------------------------------------
// relaygate

func (s *stack) startRelaygate(tcp string) {
	t := s.t
	var prev os.FileInfo
	if fi, err := os.Stat(s.mapPath); err == nil {
		prev = fi
	}
	cmd := exec.Command(relaygateBin, s.rgArgs...)
	cmd.Env = s.rgEnv
	s.rg = startProc(t, "relaygate", s.rgLog, cmd)
	// Ready = the map was (re)published, which happens right after the
	// listeners are bound; a restart must replace the old file.
	_, ok := testutil.Poll(startupWait, 10*time.Millisecond, func() bool {
		if s.rg.exited() {
			return false
		}
		fi, err := os.Stat(s.mapPath)
		if err != nil || (prev != nil && os.SameFile(prev, fi)) {
			return false
		}
		return tcp == "" || portOpen(tcp)
	})
	if !ok {
		if s.rg.exited() {
			t.Fatalf("relaygate exited during startup: %v\n%s", s.rg.err, tail(s.rgLog, 40))
		}
		t.Fatalf("relaygate not ready within %v (map %s not (re)published)\n%s", startupWait, s.mapPath, tail(s.rgLog, 40))
	}
}

// restartRelaygate stops relaygate with sig and starts it again with the
// same arguments, map and state.
func (s *stack) restartRelaygate(sig syscall.Signal, tcp string) error {
	err := s.rg.stop(s.t, sig, 15*time.Second)
	s.startRelaygate(tcp)
	return err
}

// listGrants runs `relaygate list`.
func (s *stack) listGrants() string {
	out, err := exec.Command(relaygateBin, "list", "-map", s.mapPath, "-state", s.statePath).CombinedOutput()
	if err != nil {
		s.t.Fatalf("relaygate list: %v\n%s", err, out)
	}
	return string(out)
}

// ---------------------------------------------------------------------------
// rsyslog

func (s *stack) startRsyslog(forward string) {
	t := s.t
	dir := filepath.Join(s.dir, "rsyslog")
	mkdirs(t, 0o755, filepath.Join(dir, "work"))
	conf := filepath.Join(dir, "rsyslog.conf")
	testutil.WriteFile(t, conf, fmt.Sprintf(`# relaygate e2e rsyslog: /dev/log is the suite's private one
global(workDirectory="%s")
module(load="imuxsock" SysSock.Name="/dev/log" SysSock.RateLimit.Interval="0")
%s
*.* action(type="omfile" file="%s")
`, filepath.Join(dir, "work"), forward, s.allLog), 0o644)
	run(t, "rsyslogd", "-N1", "-f", conf)
	startProc(t, "rsyslogd", filepath.Join(dir, "rsyslogd.out"),
		exec.Command("rsyslogd", "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid")))
	waitSyslog(t, s.allLog)
}

// waitSyslog sends probes to /dev/log until one shows up in allLog.
func waitSyslog(t *testing.T, allLog string) {
	t.Helper()
	token := fmt.Sprintf("e2e-probe-%d", time.Now().UnixNano())
	_, ok := testutil.Poll(startupWait, 100*time.Millisecond, func() bool {
		if c, err := net.Dial("unixgram", "/dev/log"); err == nil {
			fmt.Fprintf(c, "<22>e2e-probe: %s", token)
			c.Close()
		}
		return testutil.FileContains(allLog, token)
	})
	if !ok {
		t.Fatalf("syslog daemon did not log a probe to %s within %v", allLog, startupWait)
	}
}

// ---------------------------------------------------------------------------
// Dovecot

// writeDovecotUsers writes a passwd-file, 0640 root:dovecot, so that
// Dovecot's auth process can read it.
func writeDovecotUsers(t *testing.T, path, content string) {
	t.Helper()
	testutil.WriteFile(t, path, content, 0o640)
	g, err := user.LookupGroup("dovecot")
	if err != nil {
		t.Fatalf("group dovecot: %v", err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	if err := os.Chown(path, 0, gid); err != nil {
		t.Fatal(err)
	}
}

// dovecotConf is the suite's Dovecot configuration: state under dir, the
// passwd-file users, logging to syslog's mail facility (the lines under
// test), plaintext POP3 and IMAP on listen's standard ports and no TLS
// listeners; protocols lists the protocols, extra is appended (settings,
// services, includes).
func dovecotConf(dir, users, listen, protocols, extra string) string {
	return fmt.Sprintf(`# relaygate e2e Dovecot
base_dir = %[1]s/run
state_dir = %[1]s/state
protocols = %[4]s
listen = %[3]s
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = syslog
syslog_facility = mail
mail_location = maildir:%[1]s/mail/%%u
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[2]s
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=%[1]s/mail/%%u
}
service imap-login {
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3s {
    port = 0
  }
}
%[5]s`, dir, users, listen, protocols, extra)
}

// dovecotHome makes a Dovecot instance's directories under dir (run,
// state, a mail root every user may write) and its passwd-file of the
// suite's users, alice/alicepw and bob/bobpw, and returns that file.
func dovecotHome(t *testing.T, dir string) (users string) {
	t.Helper()
	mkdirs(t, 0o755, dir, filepath.Join(dir, "run"), filepath.Join(dir, "state"))
	mkdirs(t, 0o1777, filepath.Join(dir, "mail"))
	users = filepath.Join(dir, "users")
	writeDovecotUsers(t, users, "alice:{PLAIN}alicepw::::::\nbob:{PLAIN}bobpw::::::\n")
	return users
}

// Users: alice/alicepw, bob/bobpw.
func (s *stack) startDovecot() {
	t := s.t
	dir := filepath.Join(s.dir, "dovecot")
	users := dovecotHome(t, dir)
	conf := filepath.Join(dir, "dovecot.conf")
	testutil.WriteFile(t, conf, dovecotConf(dir, users, "127.0.0.1", "pop3 imap", ""), 0o644)
	startProc(t, "dovecot", filepath.Join(dir, "dovecot.out"),
		exec.Command("dovecot", "-F", "-c", conf))
	waitGreeting(t, "dovecot pop3", pop3Addr, "+OK", 15*time.Second)
	waitGreeting(t, "dovecot imap", imapAddr, "* OK", 15*time.Second)
}

// ---------------------------------------------------------------------------
// leak check

// checkNoStrayProcesses fails the test if any process other than the
// namespace's init and the test process is still alive (after giving the
// just-stopped daemons a moment to finish exiting).
func checkNoStrayProcesses(t *testing.T) {
	t.Helper()
	var left []string
	_, ok := testutil.Poll(startupWait, 50*time.Millisecond, func() bool {
		left = left[:0]
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == 1 || pid == os.Getpid() || !pidAlive(pid) {
				continue
			}
			comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
			left = append(left, fmt.Sprintf("%d(%s)", pid, strings.TrimSpace(string(comm))))
		}
		return len(left) == 0
	})
	if !ok {
		t.Errorf("processes still running after the test stopped its daemons: %s", strings.Join(left, ", "))
		for _, l := range left {
			if pid, err := strconv.Atoi(l[:strings.IndexByte(l, '(')]); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}
