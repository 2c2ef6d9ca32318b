package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/postfix"
	"github.com/relaygate/relaygate/internal/testutil"
)

// postfixConfig makes a throw-away Postfix configuration directory from the
// machine's own main.cf and master.cf, with settings applied through
// postconf -e, as an operator would. postconf -c needs no running Postfix.
func postfixConfig(t *testing.T, settings ...string) string {
	t.Helper()
	testutil.RequireProgram(t, "postconf", "apt-get install postfix postfix-cdb")
	dir := t.TempDir()
	for _, f := range []string{"main.cf", "master.cf"} {
		data, err := os.ReadFile(filepath.Join("/etc/postfix", f))
		if err != nil {
			if testutil.InCI() {
				t.Fatal(err)
			}
			t.Skipf("no Postfix configuration to copy: %v", err)
		}
		testutil.WriteFile(t, filepath.Join(dir, f), string(data), 0o644)
	}
	// Start from Debian's shipped relay restrictions whatever this machine
	// has, so every case below means the same everywhere.
	base := []string{
		"smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination",
		"smtpd_recipient_restrictions =",
		"mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128",
	}
	if out, err := exec.Command("postconf", append([]string{"-c", dir, "-e"}, append(base, settings...)...)...).CombinedOutput(); err != nil {
		t.Fatalf("postconf -e: %v: %s", err, out)
	}
	ageConfig(t, dir)
	return dir
}

// ageConfig backdates main.cf: Postfix waits until a file it loads is a
// couple of seconds old (so it never reads one being written), which would
// add 2 s to every postconf run on a fresh config.
func ageConfig(t *testing.T, dir string) {
	t.Helper()
	past := time.Now().Add(-time.Minute)
	if err := os.Chtimes(filepath.Join(dir, "main.cf"), past, past); err != nil {
		t.Fatal(err)
	}
}

// runCheck runs `relaygate check` and returns its exit code, its output and
// its PROBLEM lines; every line must be an ok:, a note: or a PROBLEM: with
// a fix.
func runCheck(t *testing.T, args ...string) (int, string, []string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"check"}, args...), nil, &out, &errOut)
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.HasPrefix(line, "ok: ") && !strings.HasPrefix(line, "note: ") && !strings.HasPrefix(line, "PROBLEM: ") {
			t.Errorf("output line %q is neither ok:, note: nor PROBLEM:", line)
		}
		if strings.HasPrefix(line, "PROBLEM: ") && !strings.Contains(line, " — fix: ") {
			t.Errorf("problem without a fix: %q", line)
		}
	}
	return code, out.String() + errOut.String(), problemsIn(out.String())
}

func problemsIn(out string) []string {
	var p []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "PROBLEM: ") {
			p = append(p, line)
		}
	}
	return p
}

func TestCheckCorrectSetup(t *testing.T) {
	mapDir := t.TempDir()
	mapPath := filepath.Join(mapDir, "pbs.cdb")
	pf := postfixConfig(t,
		"smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, check_client_access cdb:"+filepath.Join(mapDir, "pbs")+", reject_unauth_destination")
	code, out, problems := runCheck(t, "-map", mapPath, "-postfix-config", pf)
	if code != 0 || len(problems) != 0 {
		t.Fatalf("exit %d, problems %q:\n%s", code, problems, out)
	}
	for _, want := range []string{"ok: map directory " + mapDir + " is writable", "ok: Postfix supports cdb maps",
		"ok: smtpd_relay_restrictions consults cdb:" + filepath.Join(mapDir, "pbs"), "ok: mynetworks"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The same map named without .cdb, and a map in the recipient
	// restrictions with the relay restrictions empty, are just as right.
	pf = postfixConfig(t, "smtpd_relay_restrictions =",
		"smtpd_recipient_restrictions = permit_mynetworks check_client_access cdb:"+filepath.Join(mapDir, "pbs")+" reject_unauth_destination")
	if code, out, problems := runCheck(t, "-map", filepath.Join(mapDir, "pbs"), "-postfix-config", pf); code != 0 || len(problems) != 0 {
		t.Fatalf("recipient restrictions: exit %d, problems %q:\n%s", code, problems, out)
	}
}

// TestCheckReportsEachProblem: every deliberately broken configuration is
// reported with its own problem and a fix, and the command exits 1.
func TestCheckReportsEachProblem(t *testing.T) {
	mapDir := t.TempDir()
	mapPath := filepath.Join(mapDir, "pbs.cdb")
	ref := "check_client_access cdb:" + filepath.Join(mapDir, "pbs")
	good := "smtpd_relay_restrictions = permit_mynetworks, " + ref + ", reject_unauth_destination"
	for _, tc := range []struct {
		name     string
		settings []string
		mapPath  string
		want     []string // substrings of the PROBLEM line, all required
	}{
		{"Debian default: map not referenced", nil, mapPath,
			[]string{"does not consult cdb:" + filepath.Join(mapDir, "pbs"), "fix: postconf -c ", "'smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, " + ref + ", defer_unauth_destination'"}},
		{"other map referenced", []string{"smtpd_relay_restrictions = permit_mynetworks, check_client_access cdb:/etc/postfix/pop-before-smtp, reject_unauth_destination"}, mapPath,
			[]string{"does not consult", "it consults cdb:/etc/postfix/pop-before-smtp"}},
		{"454 trap", []string{"smtpd_recipient_restrictions = permit_mynetworks, " + ref + ", reject_unauth_destination"}, mapPath,
			[]string{"454 Relay access denied", "ends in defer_unauth_destination", "fix: postconf"}},
		{"after reject in relay restrictions", []string{"smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination, " + ref}, mapPath,
			[]string{"only after reject_unauth_destination", "'smtpd_relay_restrictions = permit_mynetworks, " + ref + ", reject_unauth_destination'"}},
		{"after reject in recipient restrictions", []string{"smtpd_relay_restrictions =", "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination, " + ref}, mapPath,
			[]string{"smtpd_recipient_restrictions consults", "only after reject_unauth_destination"}},
		// Postfix lists the map types it can open from meta_directory's
		// dynamicmaps.cf; without postfix-cdb's entry there, no cdb.
		{"no cdb support", []string{good, "meta_directory = /nonexistent"}, mapPath,
			[]string{"no cdb map support", "apt-get install postfix-cdb"}},
		{"mynetworks 10.0.0.0/8", []string{good, "mynetworks = 127.0.0.0/8 10.0.0.0/8"}, mapPath,
			[]string{"mynetworks includes 10.0.0.0/8, wider than /16"}},
		{"mynetworks everything", []string{good, "mynetworks = 0.0.0.0/0"}, mapPath,
			[]string{"mynetworks includes 0.0.0.0/0"}},
		{"mynetworks wide IPv6", []string{good, "mynetworks = 127.0.0.0/8 [2001:db8::]/32"}, mapPath,
			[]string{"mynetworks includes 2001:db8::/32, wider than /48"}},
		{"map directory missing", []string{"smtpd_relay_restrictions = permit_mynetworks, check_client_access cdb:" + filepath.Join(mapDir, "missing", "pbs") + ", reject_unauth_destination"},
			filepath.Join(mapDir, "missing", "pbs.cdb"),
			[]string{"map directory " + filepath.Join(mapDir, "missing"), "fix: mkdir -p"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pf := postfixConfig(t, tc.settings...)
			code, out, problems := runCheck(t, "-map", tc.mapPath, "-postfix-config", pf)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if len(problems) != 1 {
				t.Fatalf("want exactly one problem, got %d:\n%s", len(problems), out)
			}
			for _, w := range tc.want {
				if !strings.Contains(problems[0], w) {
					t.Errorf("problem lacks %q:\n%s", w, problems[0])
				}
			}
		})
	}
}

// TestCheckFixesWork: applying the printed fix to the broken configuration
// makes check pass, so the advice is not just words.
func TestCheckFixesWork(t *testing.T) {
	mapDir := t.TempDir()
	mapPath := filepath.Join(mapDir, "pbs.cdb")
	ref := "check_client_access cdb:" + filepath.Join(mapDir, "pbs")
	for _, settings := range [][]string{
		nil,
		{"smtpd_recipient_restrictions = permit_mynetworks, " + ref + ", reject_unauth_destination"},
		{"smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination, " + ref},
		{"smtpd_relay_restrictions =", "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination, " + ref},
		{"smtpd_relay_restrictions =", "smtpd_recipient_restrictions ="},
	} {
		pf := postfixConfig(t, settings...)
		_, out, problems := runCheck(t, "-map", mapPath, "-postfix-config", pf)
		if len(problems) != 1 {
			t.Fatalf("%q: want one problem:\n%s", settings, out)
		}
		_, fix, _ := strings.Cut(problems[0], " — fix: ")
		fix, _, _ = strings.Cut(fix, " (or set it empty")
		if out, err := exec.Command("sh", "-c", fix).CombinedOutput(); err != nil {
			t.Fatalf("fix %q: %v: %s", fix, err, out)
		}
		ageConfig(t, pf)
		if code, out, problems := runCheck(t, "-map", mapPath, "-postfix-config", pf); code != 0 {
			t.Errorf("%q: after %q still %q:\n%s", settings, fix, problems, out)
		}
	}
}

// TestCheckUser: -user judges the map directory by owner and mode, which
// matters when check runs as root (root may write anywhere).
func TestCheckUser(t *testing.T) {
	pf := postfixConfig(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	owner := fileOwner(t, st)
	if owner == "nobody" {
		t.Skip("running as nobody")
	}
	_, out, _ := runCheck(t, "-map", filepath.Join(dir, "pbs.cdb"), "-postfix-config", pf, "-user", "nobody")
	if !strings.Contains(out, "PROBLEM: user nobody cannot create files in the map directory "+dir) {
		t.Errorf("nobody may not write a 0755 directory of %s:\n%s", owner, out)
	}
	_, out, _ = runCheck(t, "-map", filepath.Join(dir, "pbs.cdb"), "-postfix-config", pf, "-user", owner)
	if !strings.Contains(out, "ok: user "+owner+" may create files in the map directory") {
		t.Errorf("the owner may write its 0755 directory:\n%s", out)
	}
	_, out, _ = runCheck(t, "-map", filepath.Join(dir, "pbs.cdb"), "-postfix-config", pf, "-user", "no-such-user-relaygate")
	if !strings.Contains(out, "PROBLEM: user no-such-user-relaygate") {
		t.Errorf("unknown user not reported:\n%s", out)
	}
}

// TestCheckExamplePostfixConfig: examples/postfix-main.cf, appended to a
// real main.cf, is valid for postconf and passes check's Postfix checks.
func TestCheckExamplePostfixConfig(t *testing.T) {
	pf := postfixConfig(t)
	example, err := os.ReadFile("../../examples/postfix-main.cf")
	if err != nil {
		t.Fatal(err)
	}
	// Drop what the example sets, so Postfix itself reads the example's
	// lines (continuations and all) without "overriding earlier entry".
	var names []string
	for _, line := range strings.Split(string(example), "\n") {
		if name, _, ok := strings.Cut(line, "="); ok && line != "" && line[0] >= 'a' && line[0] <= 'z' {
			names = append(names, strings.TrimSpace(name))
		}
	}
	if len(names) == 0 {
		t.Fatal("no settings found in the example")
	}
	if out, err := exec.Command("postconf", append([]string{"-c", pf, "-X"}, names...)...).CombinedOutput(); err != nil {
		t.Fatalf("postconf -X: %v: %s", err, out)
	}
	main := filepath.Join(pf, "main.cf")
	data, err := os.ReadFile(main)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, main, string(data)+"\n"+string(example), 0o644)
	ageConfig(t, pf)
	cmd := exec.Command("postconf", "-c", pf, "-n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("postconf -n on the example: %v: %s", err, stderr.String())
	}
	findings := postfix.Check(context.Background(), postfix.CheckOptions{MapPath: "/var/lib/relaygate/pop-before-smtp.cdb", PostfixConfig: pf})
	for _, f := range findings {
		if f.Problem && f.ID != "map-dir" {
			t.Errorf("example: %s", f)
		}
	}
}

func fileOwner(t *testing.T, fi os.FileInfo) string {
	t.Helper()
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		t.Skip("no owner information")
	}
	u, err := user.LookupId(fmt.Sprint(st.Uid))
	if err != nil {
		t.Skip(err)
	}
	return u.Username
}

// TestCheckReadOnlyMount: root may write anywhere by permissions, but not
// on a read-only file system; check finds that by writing. The mount lives
// in a private mount namespace (unshare), so the host never sees it.
func TestCheckReadOnlyMount(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and unshare")
	}
	pf := postfixConfig(t)
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := `mount -t tmpfs -o ro tmpfs "$1" && exec "$2" check -map "$1/pbs.cdb" -postfix-config "$3"`
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "--", "sh", "-c", script, "_", dir, exe, pf)
	cmd.Env = append(os.Environ(), "RELAYGATE_TEST_MAIN=1")
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit %d (%v), want 1:\n%s", code, err, out)
	}
	want := "PROBLEM: root cannot create files in the map directory " + dir + ": read-only file system — fix: put the map on a writable file system"
	if !strings.Contains(string(out), want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
}

// TestCheckOrigin: the serve flags after "--" reach the origin checks (and
// give check its -map), and -rsyslog-config is read: an rsyslog that
// forwards without the origin element to a relaygate with -origin require
// is a problem, the shipped origin example is not.
func TestCheckOrigin(t *testing.T) {
	mapDir := t.TempDir()
	pf := postfixConfig(t,
		"smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, check_client_access cdb:"+filepath.Join(mapDir, "pbs")+", reject_unauth_destination")
	conf := func(example string) string {
		data, err := os.ReadFile("../../examples/" + example)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "rsyslog.conf")
		testutil.WriteFile(t, p, string(data), 0o644)
		return p
	}
	serve := []string{"--", "-map", filepath.Join(mapDir, "pbs.cdb"), "-postfix-config", pf, "-origin", "require", "-origin-from", "127.0.0.1/32"}

	code, out, problems := runCheck(t, append([]string{"-rsyslog-config", conf("rsyslog-relaygate-origin.conf")}, serve...)...)
	if code != 0 || len(problems) != 0 {
		t.Fatalf("origin example: exit %d, problems %q:\n%s", code, problems, out)
	}
	for _, want := range []string{"ok: smtpd_relay_restrictions consults cdb:" + filepath.Join(mapDir, "pbs"),
		"ok: -origin require: a line's writer is believed from syslog senders in 127.0.0.1/32",
		"note: -origin-from trusts 127.0.0.1/32", "with the origin element (template RelaygateOrigin)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, problems = runCheck(t, append([]string{"-rsyslog-config", conf("rsyslog-relaygate-tcp.conf")}, serve...)...)
	if code != 1 || len(problems) != 1 || !strings.Contains(problems[0], "without an origin element: with -origin require its login lines never grant") {
		t.Fatalf("plain TCP example: exit %d, problems %q:\n%s", code, problems, out)
	}

	code, out, problems = runCheck(t, "-rsyslog-config", "", "--", "-map", filepath.Join(mapDir, "pbs.cdb"), "-postfix-config", pf, "-origin", "require")
	if code != 1 || len(problems) != 1 || !strings.Contains(problems[0], "-origin require, but relaygate believes no log path's origin") {
		t.Fatalf("nothing trusted: exit %d, problems %q:\n%s", code, problems, out)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"check", "--", "-origin", "sometimes"}, nil, &stdout, &stderr); code == 0 ||
		!strings.Contains(stderr.String(), "serve flags after --") {
		t.Errorf("a bad serve flag: exit %d:\n%s%s", code, stdout.String(), stderr.String())
	}
}
