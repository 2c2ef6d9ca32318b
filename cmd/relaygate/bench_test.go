package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// benchLog is a mail log like a busy host's: every fixture line of every
// daemon once, then noise (Postfix, sshd, cron, kernel) to make it up to
// lines, in the proportion relaygate-load sends.
func benchLog(b *testing.B, lines int) []byte {
	b.Helper()
	var fixtures, noise [][]byte
	files, _ := filepath.Glob("../../testdata/parsers/*.log")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range bytes.Split(data, []byte("\n")) {
			if len(l) == 0 || l[0] == '#' {
				continue
			}
			if filepath.Base(f) == "noise.log" {
				noise = append(noise, l)
			} else {
				fixtures = append(fixtures, l)
			}
		}
	}
	var buf bytes.Buffer
	n := 0
	for n < lines {
		// about 6% daemon lines, the rest noise
		if n%16 == 0 {
			buf.Write(fixtures[(n/16)%len(fixtures)])
		} else {
			buf.Write(noise[n%len(noise)])
		}
		buf.WriteByte('\n')
		n++
	}
	return buf.Bytes()
}

// BenchmarkParseCommand measures `relaygate parse` over a mail log, every
// built-in daemon enabled; lines/s = 1e9 / (ns/op / 100000).
func BenchmarkParseCommand(b *testing.B) {
	log := benchLog(b, 100000)
	b.SetBytes(int64(len(log)))
	b.ResetTimer()
	for range b.N {
		if code := run(context.Background(), []string{"parse"}, bytes.NewReader(log), io.Discard, io.Discard); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
	b.ReportMetric(float64(b.N)*100000/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkReceiveParse measures the daemon's whole receive→parse path:
// one rsyslog-like TCP connection with newline framing → receiver
// (framing, envelope, program filter) → parsers and correlator → grant
// table. Each iteration sends benchLog's 100,000 lines, then a login from
// an address of its own, and ends when that address is in the table: the
// path keeps the connection's order, so every line before it was handled.
func BenchmarkReceiveParse(b *testing.B) {
	const lines = 100000
	var stream bytes.Buffer
	for _, l := range bytes.Split(bytes.TrimSuffix(benchLog(b, lines), []byte("\n")), []byte("\n")) {
		stream.WriteString("<22>")
		stream.Write(l)
		stream.WriteByte('\n')
	}
	d := launchDaemon(b, zerolog.Nop(), "-udp", "", "-tcp", "127.0.0.1:0", "-map", filepath.Join(b.TempDir(), "pbs.cdb"),
		"-mynetworks", "none", "-grace", "10h", "-max-entries", "2000000")
	conn, err := net.Dial("tcp", d.TCPAddr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	b.SetBytes(int64(stream.Len()))
	b.ResetTimer()
	for i := range b.N {
		sentinel := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 12: byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
		login := fmt.Sprintf("<22>Nov 21 10:00:00 mx1 dovecot[812]: imap-login: Login: user=<bench>, method=PLAIN, rip=%s, lip=192.0.2.1, mpid=1, session=<bench%d>\n", sentinel, i)
		if _, err := conn.Write(stream.Bytes()); err != nil {
			b.Fatal(err)
		}
		if _, err := io.WriteString(conn, login); err != nil {
			b.Fatal(err)
		}
		for !d.Granted(sentinel) {
			time.Sleep(50 * time.Microsecond)
		}
	}
	b.ReportMetric(float64(b.N)*(lines+1)/b.Elapsed().Seconds(), "msgs/s")
}
