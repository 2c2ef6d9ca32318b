//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relaygate/relaygate/internal/fleet"
	"github.com/relaygate/relaygate/internal/testutil"
)

// topoPKI is the fleet's CA and the certificates it signs, as PEM files:
// one per nats-server, valid for its address (which the relaygates and
// the routes dial) and its example name, for server and client use (a
// route presents it to the peer it dials, which verifies it); one per
// relaygate, whose DNS name is its user in the example (verify_and_map).
// testutil.NewPKI makes a CA per call, and one server certificate.
type topoPKI struct {
	dir, ca string
	caCert  *x509.Certificate
	caKey   *ecdsa.PrivateKey
}

func newTopoPKI(t *testing.T, dir string) *topoPKI {
	t.Helper()
	mkdirs(t, 0o755, dir)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relaygate fleet test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	p := &topoPKI{dir: dir, caKey: key}
	if p.caCert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	p.ca = filepath.Join(dir, "ca.pem")
	testutil.WriteFile(t, p.ca, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), 0o644)
	return p
}

// server is the certificate of nats-server host name at addr.
func (p *topoPKI) server(t *testing.T, name, addr string) (cert, key string) {
	return p.issue(t, name, &x509.Certificate{DNSNames: []string{name + ".example.org"}, IPAddresses: []net.IP{net.ParseIP(addr)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
}

// client is the relaygate certificate of host name: user NAME.example.org.
func (p *topoPKI) client(t *testing.T, name string) (cert, key string) {
	return p.issue(t, name+"-client", &x509.Certificate{DNSNames: []string{name + ".example.org"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
}

// issue signs tmpl (made once per file name) with the CA.
func (p *topoPKI) issue(t *testing.T, file string, tmpl *x509.Certificate) (cert, key string) {
	t.Helper()
	cert, key = filepath.Join(p.dir, file+".pem"), filepath.Join(p.dir, file+".key")
	if _, err := os.Stat(cert); err == nil {
		return cert, key
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial.Add(serial, big.NewInt(2))
	tmpl.Subject = pkix.Name{CommonName: tmpl.DNSNames[0]}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, k.Public(), p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), 0o644)
	testutil.WriteFile(t, key, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})), 0o600)
	return cert, key
}

// checkAuthorization: what the example's configuration lets in. An MTA's
// certificate is a user of FOLLOWERS, whose publishes are refused on any
// subject of the stream (internal/fleet's TestFollowerCannotPublish tries
// every other route on loopback); a client without a certificate, or
// without TLS, is not let in at all.
func (tp *topology) checkAuthorization(t *testing.T) {
	cert, key := tp.pki.client(t, "mx1")
	nc, err := nats.Connect(tp.urls, nats.RootCAs(tp.pki.ca), nats.ClientCert(cert, key))
	if err != nil {
		t.Fatalf("mx1's certificate: %v", err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for _, subj := range []string{"relaygate.grants.mx1", "relaygate.grants.pop1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.Publish(ctx, subj, []byte("{}"))
		cancel()
		if err == nil {
			t.Fatalf("mx1's user published on %s", subj)
		}
		t.Logf("mx1's user publishing on %s: %v", subj, err)
	}
	if c, err := nats.Connect(tp.urls, nats.RootCAs(tp.pki.ca), nats.Timeout(2*time.Second)); err == nil {
		c.Close()
		t.Fatal("a client without a certificate connected")
	} else {
		t.Logf("TLS without a client certificate: %v", err)
	}

	// A plaintext client, by hand (nats.go would start TLS itself on
	// seeing the server's INFO): told TLS is required, and not answered.
	c, err := net.DialTimeout("tcp", tp.nats[0].addr+":4222", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if info, err := r.ReadString('\n'); err != nil || !strings.Contains(info, `"tls_required":true`) {
		t.Fatalf("%s's INFO: %q, %v; want tls_required", tp.nats[0].name, info, err)
	}
	fmt.Fprint(c, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n")
	if reply, err := r.ReadString('\n'); strings.HasPrefix(reply, "PONG") {
		t.Fatal("a plaintext client was answered PONG")
	} else {
		t.Logf("plaintext client: INFO says tls_required; to CONNECT and PING: %q, %v", reply, err)
	}
}

// streamMsgs is how many events the stream holds.
func (tp *topology) streamMsgs(t *testing.T) uint64 {
	t.Helper()
	nc, err := nats.Connect(tp.urls, tp.natsOpts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, fleet.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().State.Msgs
}
