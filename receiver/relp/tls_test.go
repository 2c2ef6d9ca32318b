package relp

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

// serverTLS is the TLS configuration the daemon makes of -tls-cert,
// -tls-key and -tls-client-ca.
func serverTLS(t *testing.T, pki *testutil.PKI, requireClient bool) *tls.Config {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12, SessionTicketsDisabled: true}
	if requireClient {
		caPEM, err := os.ReadFile(pki.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		conf.ClientCAs, conf.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return conf
}

func TestTLSClientCertificate(t *testing.T) {
	pki := testutil.NewPKI(t, "", testutil.PKIOptions{})
	st := new(Stats)
	ts := startServer(t, Config{TLS: serverTLS(t, pki, true), OpenTimeout: 4 * time.Second, Stats: st}) // room for a handshake on a loaded machine, under expectEOF's 10 s

	t.Run("verified client", func(t *testing.T) {
		conn, err := tls.Dial("tcp", ts.Addr().String(), pki.ClientConfig(&pki.Client))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := newClient(t, conn)
		c.open()
		txnr := c.send(cmdSyslog, "<13>over TLS")
		d := ts.next(t)
		if d.TLSPeer != "mx1.example" || string(d.Raw) != "<13>over TLS" {
			t.Fatalf("delivery %+v", d)
		}
		d.Ack()
		c.expectRsp(txnr, rspOK)
		c.expectRsp(c.send(cmdClose, ""), rspOK)
		c.expectServerClose()
	})
	for _, tc := range []struct {
		name string
		cert *tls.Certificate
	}{{"no client certificate", nil}, {"certificate of another CA", &pki.Rogue}} {
		t.Run(tc.name, func(t *testing.T) {
			before := st.refused[3].Load()
			conn, err := tls.Dial("tcp", ts.Addr().String(), pki.ClientConfig(tc.cert))
			if err == nil {
				// TLS 1.3: the refusal comes with the first read (or
				// already fails the write).
				c := newClient(t, conn)
				_ = conn.SetDeadline(time.Now().Add(testutil.EventuallyFloor))
				if _, err = conn.Write(appendFrame(nil, 1, cmdOpen, []byte(librelpOffers))); err == nil {
					_, err = c.read(testutil.EventuallyFloor)
				}
				if err == nil {
					t.Fatal("a session without a trusted client certificate")
				}
				conn.Close()
			}
			testutil.Eventually(t, 5*time.Second, "tls refusal counted", func() bool { return st.refused[3].Load() == before+1 })
		})
	}
	t.Run("plain TCP to the TLS listener", func(t *testing.T) {
		before := st.refused[3].Load()
		c := dial(t, ts.Addr())
		c.raw(string(appendFrame(nil, 1, cmdOpen, []byte(librelpOffers))))
		c.expectEOF()
		testutil.Eventually(t, 5*time.Second, "tls refusal counted", func() bool { return st.refused[3].Load() == before+1 })
	})
	t.Run("silent client", func(t *testing.T) {
		before := st.refused[3].Load()
		c := dial(t, ts.Addr())
		c.expectEOF() // within OpenTimeout
		testutil.Eventually(t, 5*time.Second, "tls refusal counted", func() bool { return st.refused[3].Load() == before+1 })
	})
}
