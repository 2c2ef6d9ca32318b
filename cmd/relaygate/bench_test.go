package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
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
