package testutil

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPKIHandshake checks that the PKI's files make a server that accepts
// the client certificate and refuses the rogue one, for both key kinds.
func TestPKIHandshake(t *testing.T) {
	for _, kind := range []KeyKind{ECDSA, RSA} {
		t.Run(string(kind), func(t *testing.T) {
			p := NewPKI(t, "", PKIOptions{Kind: kind})
			pair, err := tls.LoadX509KeyPair(p.ServerCert, p.ServerKey)
			if err != nil {
				t.Fatal(err)
			}
			caPEM, err := os.ReadFile(p.CAFile)
			if err != nil {
				t.Fatal(err)
			}
			clientCAs := x509.NewCertPool()
			clientCAs.AppendCertsFromPEM(caPEM)
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
				Certificates: []tls.Certificate{pair},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    clientCAs,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					_ = c.(*tls.Conn).Handshake()
					_, _ = c.Write([]byte("x"))
					c.Close()
				}
			}()
			try := func(cert *tls.Certificate) error {
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), p.ClientConfig(cert))
				if err != nil {
					return err
				}
				defer c.Close()
				_, err = c.Read(make([]byte, 1))
				return err
			}
			if err := try(&p.Client); err != nil {
				t.Errorf("client certificate refused: %v", err)
			}
			if err := try(&p.Rogue); err == nil {
				t.Error("rogue certificate accepted")
			}
		})
	}
}

func TestPollAndFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b")
	WriteFile(t, path, "hello", 0o600)
	if !FileContains(path, "ell") || FileContains(path, "xyz") {
		t.Fatal("FileContains")
	}
	n := 0
	if _, ok := Poll(time.Second, time.Millisecond, func() bool { n++; return n == 3 }); !ok {
		t.Fatal("Poll gave up")
	}
}
