//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

// Courier's esmtpd (issue 15): couriertcpd -access reads the GDBM file
// relaygate -courier-smtpaccess builds with Courier's own makedat from the
// site's rules and the grants; -courier-restart (esmtpd restart: a
// SIGHUP) makes couriertcpd reopen it. Courier's MTA conflicts with
// Postfix as a package: it runs from the courier-mta layer, chrooted.

const (
	courierMTAAddr  = "127.0.0.1:2530"
	courierMTAAddr6 = "[::1]:2530"
	courierV6Client = "fd00:1:2:3:4:5:6:8"
)

// courierEsmtpdConf is appended to Debian's /etc/courier/esmtpd (the
// start script sources it; later assignments win): the access file in
// relaygate's directory, a port of the test's own on loopback, and no
// DNS (the namespace has none: a DNS check of the sender would be a
// temporary failure) nor tarpitting (a refused RCPT would be answered
// slowly).
const courierEsmtpdConf = `
# relaygate e2e
ACCESSFILE=` + chrootMapDir + `/smtpaccess
PORT=127.0.0.1.2530,::1.2530
BOFHCHECKDNS=0
TARPIT=0
MAXPERC=100
MAXPERIP=100
TCPDOPTS="-stderrlogger=/usr/sbin/courierlogger -noidentlookup -nodnslookup"
`

// courierStatic is the site's rules, as in /etc/courier/smtpaccess/.
const courierStatic = `# the site's own rules
127.0.0.1	allow,RELAYCLIENT
127.0.0.6	allow,RELAYCLIENT
127.0.0.7	deny
127.0.2.0/24	deny
`

// courierRefused says whether couriertcpd closed a connection from src
// without a greeting (a deny in the access file).
func courierRefused(src string) (bool, error) {
	c, err := dialFrom(src, courierMTAAddr)
	if err != nil {
		return false, err
	}
	defer c.Close()
	b := make([]byte, 64)
	n, err := c.Read(b)
	if n > 0 {
		return false, nil
	}
	return err != nil, nil
}

// TestCourierRelay: real Courier esmtpd (Debian's courier-mta 1.0.16)
// relays for granted clients only, the site's static rules keep working,
// and the access file is replaced under SMTP load with no session failing.
func TestCourierRelay(t *testing.T) {
	needLayer(t, "courier-mta")
	var root, static string
	s := newStack(t, stackOpts{beforeRelaygate: func(s *stack) {
		root = s.mountLayer("courier-mta")
		s.bindMapDir(root)
		static = filepath.Join(s.dir, "smtpaccess")
		mkdirs(t, 0o755, static)
		testutil.WriteFile(t, filepath.Join(static, "default"), courierStatic, 0o644)
		bin := filepath.Join(s.dir, "bin")
		mkdirs(t, 0o755, bin)
		// relaygate runs makedat -src=- -file=<dir>/<tmp> -tmp=<dir>/<tmp2>:
		// the same directory is chrootMapDir in the chroot.
		testutil.WriteFile(t, filepath.Join(bin, "makedat"), `#!/bin/sh
for a; do case $a in -file=*) f=${a##*/};; -tmp=*) w=${a##*/};; esac; done
exec chroot `+root+` /usr/bin/makedat -src=- -file=`+chrootMapDir+`/"$f" -tmp=`+chrootMapDir+`/"$w"
`, 0o755)
		s.rgArgs = append(s.rgArgs, "-courier-smtpaccess", filepath.Join(filepath.Dir(s.mapPath), "smtpaccess.dat"),
			"-courier-smtpaccess-static", static, "-courier-restart", "chroot "+root+" /usr/sbin/esmtpd restart")
		s.rgEnv = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	}})
	dat := filepath.Join(filepath.Dir(s.mapPath), "smtpaccess.dat")
	// esmtpd's start script passes -access only if the file exists: it
	// starts after relaygate's first write.
	testutil.Eventually(t, outputWait, "relaygate's first "+dat, func() bool {
		_, err := os.Stat(dat)
		return err == nil
	})
	conf := filepath.Join(root, "etc/courier/esmtpd")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, conf, string(b)+courierEsmtpdConf, 0o644)
	out := filepath.Join(s.dir, "courier-esmtpd.out")
	pidFile := filepath.Join(root, "run/courier/esmtpd.pid")
	t.Cleanup(func() {
		if _, err := os.Stat(pidFile); err == nil {
			killPIDFile(t, "courier esmtpd", pidFile, 15*time.Second)
		}
	})
	chrootRun(t, root, out, "/usr/sbin/esmtpd", "start")
	waitGreeting(t, "courier esmtpd", courierMTAAddr, "220 ", 15*time.Second)

	r := expectRcptAt(t, "courier", courierMTAAddr, "127.0.0.2", 5)
	if !strings.Contains(r.Text, "Relaying denied") {
		t.Errorf("refusal %q, want Courier's Relaying denied", r)
	}
	expectRcptAt(t, "courier", courierMTAAddr, "127.0.0.6", 2) // the site's static rule
	if refused, err := courierRefused("127.0.0.7"); err != nil || !refused {
		t.Fatalf("127.0.0.7 (the site's deny): refused %v, err %v", refused, err)
	}

	mustLogin(t, pop3Login, "127.0.0.2", "alice", "alicepw", true)
	waitRcptAt(t, "courier", courierMTAAddr, "127.0.0.2", 250, outputWait)
	expectRcptAt(t, "courier", courierMTAAddr, "127.0.0.3", 5)

	// A grant never overrides the site's deny, of the address or of its
	// network.
	for _, src := range []string{"127.0.0.7", "127.0.2.5"} {
		mustLogin(t, pop3Login, src, "alice", "alicepw", true)
		testutil.Eventually(t, 5*time.Second, src+" in the map", func() bool {
			_, ok := postmapQuery(t, s.mapBase, src)
			return ok
		})
	}
	waitLog(t, s.rgLog, "granted addresses left out of Courier's access file", outputWait)
	// A barrier: once a later grant is in the access file, so are the
	// two above if they are going to be, and their refusal is the rules'
	// doing, not a file not yet written.
	mustLogin(t, pop3Login, "127.0.0.10", "alice", "alicepw", true)
	waitRcptAt(t, "courier", courierMTAAddr, "127.0.0.10", 250, outputWait)
	for _, src := range []string{"127.0.0.7", "127.0.2.5"} {
		if refused, err := courierRefused(src); err != nil || !refused {
			t.Errorf("%s: granted, but the site denies it: refused %v, err %v", src, refused, err)
		}
	}

	// IPv6: couriertcpd's own notation (:fd00:0001:…). A login line for
	// the address sent to relaygate by hand (Dovecot listens on IPv4).
	if err := exec.Command("ip", "-6", "addr", "add", courierV6Client+"/128", "dev", "lo", "nodad").Run(); err != nil {
		t.Fatalf("ip addr add %s: %v", courierV6Client, err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "-6", "addr", "del", courierV6Client+"/128", "dev", "lo").Run() })
	expectRcptAt(t, "courier", courierMTAAddr6, courierV6Client, 5)
	c, err := net.Dial("udp", syslogUDP)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "<22>Nov 21 10:00:00 mail dovecot: imap-login: Login: user=<alice>, method=PLAIN, rip=%s, lip=::1, mpid=1, session=<c6>", courierV6Client)
	c.Close()
	waitRcptAt(t, "courier", courierMTAAddr6, courierV6Client, 250, outputWait)

	rewritesUnderLoad(t, s, "courier", func() error {
		for _, src := range []string{"127.0.0.2", "127.0.0.6"} {
			if r, err := rcptAt(courierMTAAddr, src); err != nil || r.Code != 250 {
				return fmt.Errorf("granted %s: %v (%v)", src, r, err)
			}
		}
		if r, err := rcptAt(courierMTAAddr, "127.0.0.3"); err != nil || r.Code/100 != 5 {
			return fmt.Errorf("ungranted 127.0.0.3: %v (%v)", r, err)
		}
		return nil
	}, "127.0.0.4", "127.0.0.5", "127.0.0.8")
	waitRcptAt(t, "courier", courierMTAAddr, "127.0.0.8", 250, outputWait)
	expectRcptAt(t, "courier", courierMTAAddr, "127.0.0.3", 5)

	// The site changes its rules: relaygate rereads them (within a poll)
	// and couriertcpd, told to, reads them too.
	testutil.WriteFile(t, filepath.Join(static, "local"), "127.0.0.9\tallow,RELAYCLIENT\n", 0o644)
	waitRcptAt(t, "courier", courierMTAAddr, "127.0.0.9", 250, outputWait)

	if b, _ := os.ReadFile(s.allLog); strings.Contains(string(b), "smtpaccess.dat:") {
		t.Errorf("couriertcpd could not open the access file at some point:\n%s", tail(s.allLog, 20))
	}
	if b, _ := os.ReadFile(s.rgLog); strings.Contains(string(b), "output write failed") {
		t.Errorf("a Courier write failed:\n%s", tail(s.rgLog, 20))
	}
}
