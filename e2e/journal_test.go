//go:build e2e

package e2e

// Issue 13, "The journal as a source": real Dovecot logging through
// /dev/log to a real systemd-journald (started by the test, without
// systemd as PID 1) → relaygate -journal -origin require → real Postfix.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

const (
	journaldBin = "/lib/systemd/systemd-journald"
	journalDir  = "/run/log/journal" // journald's volatile journal
	journalSock = "/run/systemd/journal/dev-log"
)

// startJournald is a stackOpts.beforeRelaygate hook: a tmpfs on /run for
// this test (journald's sockets and its volatile journal; the suite's
// namespace keeps it from the host), journald with no rate limit, and the
// namespace's /dev/log pointing at it, so that glibc's syslog(3) (Dovecot,
// Postfix, logger) writes to the journal.
func startJournald(s *stack) {
	t := s.t
	needFile(t, journaldBin, "apt-get install systemd")
	needFile(t, "/usr/bin/journalctl", "apt-get install systemd")
	if err := syscall.Mount("tmpfs", "/run", "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=755,size=256m"); err != nil {
		t.Fatalf("mount tmpfs on /run: %v", err)
	}
	t.Cleanup(func() { // after journald has stopped (cleanups run last-in first-out)
		if err := syscall.Unmount("/run", syscall.MNT_DETACH); err != nil {
			t.Errorf("umount /run: %v", err)
		}
	})
	mkdirs(t, 0o755, filepath.Dir(journalSock), "/run/systemd/journald.conf.d")
	testutil.WriteFile(t, "/run/systemd/journald.conf.d/e2e.conf", `[Journal]
Storage=volatile
RateLimitIntervalSec=0
RateLimitBurst=0
RuntimeMaxUse=200M
ForwardToSyslog=no
ForwardToWall=no
`, 0o644)
	startProc(t, "systemd-journald", filepath.Join(s.dir, "journald.out"), exec.Command(journaldBin))
	if _, ok := testutil.Poll(startupWait, 20*time.Millisecond, func() bool {
		_, err := os.Stat(journalSock)
		return err == nil
	}); !ok {
		t.Fatalf("journald made no %s within %v:\n%s", journalSock, startupWait, tail(filepath.Join(s.dir, "journald.out"), 20))
	}
	_ = os.Remove("/dev/log")
	if err := os.Symlink(journalSock, "/dev/log"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove("/dev/log") })
}

// journalAllLog is a stackOpts.syslogd hook: journalctl follows the whole
// journal into s.allLog (the barriers and the failure output read it).
func journalAllLog(s *stack) {
	startProc(s.t, "journalctl --follow", s.allLog, exec.Command("journalctl", "--follow", "--no-pager",
		"--directory="+journalDir, "--output=short-precise", "--lines=all"))
	waitSyslog(s.t, s.allLog)
}

// journalStack is Dovecot → journald → relaygate -journal (no syslog
// listener at all) -origin require → Postfix.
func journalStack(t *testing.T, flush string) *stack {
	return newStack(t, stackOpts{
		udp: "-", tcp: "-", flush: flush,
		beforeRelaygate: startJournald,
		syslogd:         journalAllLog,
		extraArgs:       []string{"-journal", "-journal-dir", journalDir, "-origin", "require", "-metrics", metricsAddr},
	})
}

// journalFields returns the trusted fields of the journal entry of
// program whose MESSAGE contains text.
func journalFields(t *testing.T, program, text string) map[string]string {
	t.Helper()
	out, err := exec.Command("journalctl", "--no-pager", "--directory="+journalDir, "--output=json",
		"SYSLOG_IDENTIFIER="+program).Output()
	if err != nil {
		t.Fatalf("journalctl: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		if msg, _ := m["MESSAGE"].(string); strings.Contains(msg, text) {
			f := map[string]string{}
			for _, k := range []string{"_UID", "_GID", "_PID", "_COMM", "_EXE", "_SYSTEMD_UNIT", "_TRANSPORT", "SYSLOG_IDENTIFIER", "_HOSTNAME"} {
				if v, ok := m[k].(string); ok {
					f[k] = v
				}
			}
			return f
		}
	}
	t.Fatalf("no journal entry of %s with %q", program, text)
	return nil
}

// Real Dovecot's logins through the journal grant; the same login line
// written by uid 65534 with logger(1) is refused (origin login_user) and
// counted.
func TestJournalDovecot(t *testing.T) {
	needFile(t, "/usr/bin/setpriv", "apt-get install util-linux")
	s := journalStack(t, "1s")
	expectRCPT(t, "127.0.0.2", 554)

	l := mustLogin(t, imapLogin, "127.0.0.2", "bob", "bobpw", true)
	grantedWithin(t, "127.0.0.2", l)
	expectInMap(t, s.mapBase, "127.0.0.2", true)
	f := journalFields(t, "dovecot", "rip=127.0.0.2")
	t.Logf("real Dovecot's login line in the journal: %v", f)
	if f["_UID"] == "" || f["_TRANSPORT"] != "syslog" {
		t.Errorf("Dovecot's journal entry: %v", f)
	}

	forged := "imap-login: Login: user=<mallory>, method=PLAIN, rip=127.0.0.3, lip=127.0.0.1, mpid=1, session=<forged1>"
	run(t, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "logger", "-t", "dovecot", forged)
	waitLog(t, s.allLog, "rip=127.0.0.3", 5*time.Second)
	t.Logf("the forged line in the journal: %v", journalFields(t, "dovecot", "rip=127.0.0.3"))
	waitMetric(t, originRefused("login_user"), 1, 5*time.Second)
	// Barrier: a later real login is granted, so the forgery was read.
	p := mustLogin(t, pop3Login, "127.0.0.4", "alice", "alicepw", true)
	grantedWithin(t, "127.0.0.4", p)
	expectRCPT(t, "127.0.0.3", 554)
	expectInMap(t, s.mapBase, "127.0.0.3", false)
	m := metrics(t)
	t.Logf("metrics: journal_entries %v, origin_refused login_user %v, grants_added %v",
		m["relaygate_journal_entries_total"], m[originRefused("login_user")], m[mGranted])
	if m[mGranted] != 2 {
		t.Errorf("grants added = %v, want 2", m[mGranted])
	}
	if _, err := os.Stat(s.statePath + ".journal-cursor"); err != nil {
		t.Errorf("cursor file: %v", err)
	}
}

// kill -9 relaygate twice while real logins keep coming through the
// journal: every login is granted in the end, those logged while relaygate
// was down too (it resumes after the cursor of the last durable entry).
func TestJournalKill9DuringLogins(t *testing.T) {
	const n = 150
	s := journalStack(t, "100ms")
	type login struct {
		src string
		at  time.Time
	}
	logins := make([]login, n)
	var made atomic.Int32
	done := make(chan error, 1)
	go func() {
		for i := range n {
			src := fmt.Sprintf("127.0.%d.%d", 1+i/200, 1+i%200)
			do := pop3Login
			if i%2 == 1 {
				do = imapLogin
			}
			r, err := do(src, "alice", "alicepw")
			if err == nil && !r.OK {
				err = fmt.Errorf("reply %q", r.Reply)
			}
			if err != nil {
				done <- fmt.Errorf("login %d from %s: %w", i, src, err)
				return
			}
			logins[i] = login{src, r.Answer}
			made.Add(1)
			time.Sleep(15 * time.Millisecond)
		}
		done <- nil
	}()
	type window struct{ from, to time.Time }
	var down []window
	for _, at := range []int32{n / 3, 2 * n / 3} {
		if _, ok := testutil.Poll(60*time.Second, 5*time.Millisecond, func() bool { return made.Load() >= at }); !ok {
			t.Fatalf("only %d logins made", made.Load())
		}
		from := time.Now()
		err := s.rg.stop(t, syscall.SIGKILL, 15*time.Second)
		time.Sleep(time.Second) // logins go on while relaygate is down
		s.startRelaygate("")
		down = append(down, window{from, time.Now()})
		if err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("relaygate after kill -9: %v, want killed", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	inDowntime := 0
	for _, l := range logins {
		for _, w := range down {
			if !l.at.Before(w.from) && !l.at.After(w.to) {
				inDowntime++
			}
		}
	}
	missing := func() []string {
		var out []string
		for _, l := range logins {
			if _, ok := postmapQuery(t, s.mapBase, l.src); !ok {
				out = append(out, l.src)
			}
		}
		return out
	}
	var left []string
	testutil.Poll(60*time.Second, 200*time.Millisecond, func() bool { left = missing(); return len(left) == 0 }) // a hang guard: each poll runs postmap for every login
	t.Logf("KILL9 %d real Dovecot logins (POP3 and IMAP alternating) through the journal, relaygate killed with kill -9 twice "+
		"(down %v and %v; %d logins answered while it was down or starting): %d in the map, %d missing",
		n, down[0].to.Sub(down[0].from).Round(time.Millisecond), down[1].to.Sub(down[1].from).Round(time.Millisecond),
		inDowntime, n-len(left), len(left))
	if len(left) > 0 {
		t.Fatalf("logins not granted after two kill -9: %v", left)
	}
	expectRCPT(t, logins[n/3].src, 250)
	expectRCPT(t, logins[n-1].src, 250)
}
