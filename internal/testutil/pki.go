package testutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// KeyKind is the key algorithm of every certificate of a PKI. rsyslog's
// GnuTLS and syslog-ng's OpenSSL are tested with both.
type KeyKind string

const (
	ECDSA KeyKind = "ecdsa"
	RSA   KeyKind = "rsa"
)

// PKIOptions names what a test PKI is made for. The zero value gives ECDSA
// keys, a server certificate for localhost, 127.0.0.1 and ::1, and a client
// certificate for mx1.example.
type PKIOptions struct {
	Kind       KeyKind
	ServerName string // DNS name of the server certificate; default "localhost"
	ServerIPs  []net.IP
	ClientName string // DNS name and CN of the client certificates; default "mx1.example"
}

// PKI is a CA, a server certificate and a client certificate signed by it,
// and a "rogue" client certificate with the same names signed by another
// CA, made at test time and written as PEM files into a directory.
type PKI struct {
	Dir                           string
	ServerName                    string
	CAFile, ServerCert, ServerKey string
	ClientCertFile, ClientKeyFile string
	OtherCAFile, RogueCertFile    string
	RogueKeyFile                  string
	Roots                         *x509.CertPool // for clients to verify the server
	Client, Rogue                 tls.Certificate
}

// NewPKI makes a PKI in dir (a new temporary directory if empty).
func NewPKI(t testing.TB, dir string, o PKIOptions) *PKI {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if o.Kind == "" {
		o.Kind = ECDSA
	}
	if o.ServerName == "" {
		o.ServerName = "localhost"
	}
	if o.ServerIPs == nil {
		o.ServerIPs = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	}
	if o.ClientName == "" {
		o.ClientName = "mx1.example"
	}
	ca, caKey := newCA(t, o.Kind, "relaygate test CA")
	other, otherKey := newCA(t, o.Kind, "some other CA")
	serverDER, serverKey := issue(t, o.Kind, ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: o.ServerName, Organization: []string{"relaygate test"}},
		DNSNames:    []string{o.ServerName},
		IPAddresses: o.ServerIPs,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	client := func() *x509.Certificate {
		return &x509.Certificate{
			Subject:     pkix.Name{CommonName: o.ClientName, Organization: []string{"relaygate test"}},
			DNSNames:    []string{o.ClientName},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
	}
	clientDER, clientKey := issue(t, o.Kind, ca, caKey, client())
	rogueDER, rogueKey := issue(t, o.Kind, other, otherKey, client())

	p := &PKI{
		Dir:            dir,
		ServerName:     o.ServerName,
		CAFile:         writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw),
		ServerCert:     writePEM(t, dir, "server.pem", "CERTIFICATE", serverDER),
		ServerKey:      writePEM(t, dir, "server.key", "PRIVATE KEY", pkcs8(t, serverKey)),
		ClientCertFile: writePEM(t, dir, "client.pem", "CERTIFICATE", clientDER),
		ClientKeyFile:  writePEM(t, dir, "client.key", "PRIVATE KEY", pkcs8(t, clientKey)),
		OtherCAFile:    writePEM(t, dir, "other-ca.pem", "CERTIFICATE", other.Raw),
		RogueCertFile:  writePEM(t, dir, "rogue.pem", "CERTIFICATE", rogueDER),
		RogueKeyFile:   writePEM(t, dir, "rogue.key", "PRIVATE KEY", pkcs8(t, rogueKey)),
		Roots:          x509.NewCertPool(),
		Client:         tls.Certificate{Certificate: [][]byte{clientDER}, PrivateKey: clientKey},
		Rogue:          tls.Certificate{Certificate: [][]byte{rogueDER}, PrivateKey: rogueKey},
	}
	p.Roots.AddCert(ca)
	return p
}

// ClientConfig is what a log sender uses: it verifies the server like
// rsyslog's x509/name mode, and presents cert (if any) whatever CAs the
// server names, as rsyslog and syslog-ng do; Go's default would withhold a
// certificate of a CA the server did not ask for.
func (p *PKI) ClientConfig(cert *tls.Certificate) *tls.Config {
	c := &tls.Config{RootCAs: p.Roots, ServerName: p.ServerName}
	if cert != nil {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return c
}

func newKey(t testing.TB, kind KeyKind) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch kind {
	case ECDSA:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newCA(t testing.TB, kind KeyKind, name string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key := newKey(t, kind)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"relaygate test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func issue(t testing.TB, kind KeyKind, ca *x509.Certificate, caKey crypto.Signer, tmpl *x509.Certificate) ([]byte, crypto.Signer) {
	t.Helper()
	key := newKey(t, kind)
	tmpl.SerialNumber = serial(t)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if kind == RSA {
		// GnuTLS refuses an RSA key-exchange certificate without it.
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	// Serial numbers must be positive (RFC 5280 4.1.2.2).
	return n.Add(n, big.NewInt(1))
}

func pkcs8(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	// Certificates are readable by the unprivileged users log daemons drop
	// to; keys only by their owner.
	mode := os.FileMode(0o644)
	if strings.HasSuffix(typ, "PRIVATE KEY") {
		mode = 0o600
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		t.Fatal(err)
	}
	return path
}
