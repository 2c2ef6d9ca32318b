//go:build e2e

package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

type standIn struct {
	mu   sync.Mutex
	data bytes.Buffer
	log  []string
}

func (s *standIn) has(m string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Contains(s.data.Bytes(), []byte(m))
}

func runStandIn(t *testing.T, p *testPKI, addr string, closeNotify bool) *standIn {
	pair, err := tls.LoadX509KeyPair(p.ServerCert, p.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(p.CA)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	conf := &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &standIn{}
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c := tls.Server(raw, conf)
				buf := make([]byte, 65536)
				for {
					_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
					n, err := c.Read(buf)
					s.mu.Lock()
					s.data.Write(buf[:n])
					s.mu.Unlock()
					if err != nil {
						s.mu.Lock()
						s.log = append(s.log, fmt.Sprintf("%s conn %s: %v (closeNotify=%v)", time.Now().Format("15:04:05.000"), raw.RemoteAddr(), err, closeNotify))
						s.mu.Unlock()
						if closeNotify {
							c.Close()
						} else {
							raw.Close()
						}
						return
					}
				}
			}()
		}
	}()
	return s
}

func probeLine(msg string) {
	if c, err := net.Dial("unixgram", "/dev/log"); err == nil {
		fmt.Fprintf(c, "<22>e2e-marker: %s", msg)
		c.Close()
	}
}

func TestZZIdleExperiment(t *testing.T) {
	for _, tr := range []string{"rsyslog", "syslog-ng"} {
		for _, cn := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s-closenotify=%v", tr, cn), func(t *testing.T) {
				pki := newTestPKI(t, t.TempDir(), keyECDSA)
				o := stackOpts{}
				if tr == "rsyslog" {
					o.forward = fmt.Sprintf(`global(DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="%s" DefaultNetstreamDriverCertFile="%s" DefaultNetstreamDriverKeyFile="%s")
*.* action(type="omfwd" protocol="tcp" target="127.0.0.1" port="6516" StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="relaygate.pbs.test" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format" action.resumeInterval="1")`, pki.CA, pki.ClientCert, pki.ClientKey)
				} else {
					o.syslogd = startSyslogNGWith(`syslog("relaygate.pbs.test" port(6516) transport("tls") time-reopen(1) tls(ca-file("/etc/syslog-ng/e2e-tls/ca.pem") peer-verify(required-trusted) cert-file("/etc/syslog-ng/e2e-tls/client.pem") key-file("/etc/syslog-ng/e2e-tls/client.key")));`,
						func(s *stack, root string) {
							dir := root + "/etc/syslog-ng/e2e-tls"
							mkdirs(t, 0o755, dir)
							for src, dst := range map[string]string{pki.CA: "ca.pem", pki.ClientCert: "client.pem", pki.ClientKey: "client.key"} {
								b, _ := os.ReadFile(src)
								writeFile(t, dir+"/"+dst, string(b), 0o600)
							}
							writeFile(t, root+"/etc/hosts", "127.0.0.1 localhost relaygate.pbs.test\n", 0o644)
						})
				}
				si := runStandIn(t, pki, "127.0.0.1:6516", cn)
				newStack(t, o)
				for round := 0; round < 3; round++ {
					time.Sleep(5 * time.Second)
					m := fmt.Sprintf("marker-%d-%d", round, time.Now().UnixNano())
					probeLine(m)
					time.Sleep(1500 * time.Millisecond)
					probeLine("follow-up " + m)
					_, ok := waitFor(5*time.Second, 50*time.Millisecond, func() bool { return si.has(m) })
					t.Logf("%s closeNotify=%v round %d: first line after idle close delivered=%v", tr, cn, round, ok)
				}
				si.mu.Lock()
				t.Logf("stand-in:\n%s", strings.Join(si.log, "\n"))
				si.mu.Unlock()
			})
		}
	}
}
