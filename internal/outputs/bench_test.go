package outputs

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/internal/grants"
)

// benchGrants is n addresses, a tenth of them IPv6, as a Publish hands
// them.
func benchGrants(n int) []netip.Addr {
	out := make([]netip.Addr, 0, n)
	for i := range n {
		if i%10 == 9 {
			var b [16]byte
			b[0], b[1], b[12], b[13], b[14], b[15] = 0x20, 0x01, 0xfd, byte(i>>16), byte(i>>8), byte(i)
			b[2], b[3] = 0x0d, 0xb8
			out = append(out, netip.AddrFrom16(b))
			continue
		}
		out = append(out, netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	return out
}

// BenchmarkPublish100k is one write of each output at 100,000 grants:
// what each set change costs the output's goroutine (never the table's).
// The Postfix map is the baseline (cdbwriter.WriteMap, the same work the
// table's goroutine does). sendmail needs makemap, courier Courier's
// makedat (they run in the sendmail and courier-mta layers of
// .ci/e2e-prepare; see docs/BENCHMARKS.md).
//
//	go test -run '^$' -bench Publish100k -benchtime 20x ./internal/outputs/
func BenchmarkPublish100k(b *testing.B) {
	addrs := benchGrants(100_000)
	dir := b.TempDir()
	ctx := context.Background()
	b.Run("postfix-map", func(b *testing.B) {
		gs := make([]grants.Grant, len(addrs))
		for i, a := range addrs {
			gs[i].Addr = a
		}
		for b.Loop() {
			if err := cdbwriter.WriteMap(filepath.Join(dir, "pbs.cdb"), gs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tcprules", func(b *testing.B) {
		o, err := newTCPRules(Config{TCPRules: filepath.Join(dir, "tcp.cdb"), TCPRulesStatic: "testdata/tcp.smtp"})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := o.Write(ctx, addrs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("opensmtpd", func(b *testing.B) {
		o := &openSMTPD{path: filepath.Join(dir, "relay"), update: []string{"true"}}
		for b.Loop() {
			if err := o.Write(ctx, addrs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sendmail", func(b *testing.B) {
		mm, err := findMakemap()
		if err != nil {
			b.Skip(err)
		}
		o := newSendmail(filepath.Join(dir, "relaygate"), mm)
		for b.Loop() {
			if err := o.Write(ctx, addrs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("courier", func(b *testing.B) {
		md, err := findMakedat()
		if err != nil {
			b.Skip(err)
		}
		// Debian's default rules, as makesmtpaccess reads them.
		o := newCourier(Config{CourierSmtpaccess: filepath.Join(dir, "smtpaccess.dat"),
			CourierStatic: "testdata/courier-smtpaccess", CourierRestart: "true"}, md)
		for b.Loop() {
			if err := o.Write(ctx, addrs); err != nil {
				b.Fatal(err)
			}
		}
	})
}
