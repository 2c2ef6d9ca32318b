package receiver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
)

// LoadTLSConfig reads a TLS listener's certificate (intermediates after
// it), key and, if clientCA is not "", the CAs a client certificate must
// be signed by (then required). Every error names the file it is about. It
// also returns the leaf certificate, so a caller can warn about one that
// is not valid now. Listen uses it for -tls; the daemon for -relp-tls.
//
// The result works with the real senders: rsyslog's gtls driver
// (StreamDriverMode="1", StreamDriverAuthMode "anon", "x509/certvalid" or
// "x509/name") and syslog-ng's tls(), over TLS 1.2 or 1.3, octet-counted or
// newline-framed; and librelp's TLS (omrelp tls="on").
func LoadTLSConfig(cert, key, clientCA string) (*tls.Config, *x509.Certificate, error) {
	cfg := Config{TLSCert: cert, TLSKey: key, TLSClientCA: clientCA}
	if cfg.TLSCert == "" || cfg.TLSKey == "" {
		return nil, nil, errors.New("-tls needs -tls-cert and -tls-key")
	}
	certPEM, err := readFile("tls certificate", cfg.TLSCert)
	if err != nil {
		return nil, nil, err
	}
	certs, err := parseCertificates(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("tls certificate %s: %w", cfg.TLSCert, err)
	}
	keyPEM, err := readFile("tls key", cfg.TLSKey)
	if err != nil {
		return nil, nil, err
	}
	if err := checkKeyPEM(keyPEM); err != nil {
		return nil, nil, fmt.Errorf("tls key %s: %w", cfg.TLSKey, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// Most likely the key of another certificate.
		return nil, nil, fmt.Errorf("tls key %s with certificate %s: %w", cfg.TLSKey, cfg.TLSCert, err)
	}
	conf := &tls.Config{
		Certificates: []tls.Certificate{pair},
		MinVersion:   tls.VersionTLS12,
		// Syslog senders keep one long-lived connection and gain nothing
		// from resumption; with tickets, rsyslog's gtls driver over TLS 1.3
		// was seen to lose the first line after relaygate closed an idle
		// connection (docs/E2E.md).
		SessionTicketsDisabled: true,
	}
	if cfg.TLSClientCA != "" {
		caPEM, err := readFile("tls client CA", cfg.TLSClientCA)
		if err != nil {
			return nil, nil, err
		}
		cas, err := parseCertificates(caPEM)
		if err != nil {
			return nil, nil, fmt.Errorf("tls client CA %s: %w", cfg.TLSClientCA, err)
		}
		pool := x509.NewCertPool()
		for _, c := range cas {
			pool.AddCert(c)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, certs[0], nil
}

// readFile reads a PEM file; the error names it once, with what it is for.
func readFile(what, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return b, nil
}

// parseCertificates returns every CERTIFICATE block in data, in order; other
// blocks (a key bundled in the same file) are skipped.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return certs, nil
}

// checkKeyPEM makes sure data holds a private key block, so that a wrong
// file is reported as such rather than as a mismatch.
func checkKeyPEM(data []byte) error {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return errors.New("no PEM PRIVATE KEY block found")
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			return nil
		}
	}
}

// CertName names a verified client certificate for Message.TLSPeer (what
// -origin-from tls and -allow-hosts judge): its subject CN, or its first
// DNS name when the CN is empty (as in many modern certificates). Every
// TLS listener names its peers by it, so a sender is the same name
// whichever it uses.
func CertName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return ""
}

// serveTLS does the handshake, bounded by tlsHandshakeTimeout and ended by
// Close, then reads the stream like TCP. raw is the tracked connection.
func (r *Receiver) serveTLS(ctx context.Context, raw net.Conn, src source, out chan<- Message) {
	conn := tls.Server(raw, r.tlsConf)
	hctx, cancel := context.WithTimeout(ctx, r.cfg.tlsHandshakeTimeout)
	err := conn.HandshakeContext(hctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil || r.isClosed() {
			return // shutting down
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no handshake within %s", r.cfg.tlsHandshakeTimeout)
		}
		r.stats.tlsRefused.Add(1)
		r.warnf("tls_refused", src.peer, "refused TLS connection: handshake failed: "+err.Error())
		return
	}
	st := conn.ConnectionState()
	if len(st.VerifiedChains) > 0 && len(st.VerifiedChains[0]) > 0 {
		src.tlsPeer = CertName(st.VerifiedChains[0][0])
	}
	r.log.Debug().Str("peer", src.peer).Str("tls_peer", src.tlsPeer).
		Str("version", tls.VersionName(st.Version)).Msg("TLS connection")
	r.readStream(ctx, conn, src, out)
}
