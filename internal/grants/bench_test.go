package grants

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// memoryMixes are the login mixes of the memory benchmark of
// docs/BENCHMARKS.md (bench.sh memory): relaygate-load's default stream,
// issue 11's (names like user123456@example.org, half IPv6), and the
// longest realistic one (64-byte names, all IPv6, 50 hosts).
var memoryMixes = []struct {
	name  string
	user  func(i int) string
	v6    func(i int) bool
	hosts int
}{
	{"bench", func(i int) string { return fmt.Sprint("u", i) }, func(i int) bool { return i%5 == 4 }, 1},
	{"issue16", func(i int) string { return fmt.Sprintf("user%d@example.org", i) }, func(i int) bool { return i%2 == 1 }, 1},
	{"long", func(i int) string {
		return fmt.Sprintf("firstname.middlename.%d@mail.faculty.example-university.edu", i)
	}, func(int) bool { return true }, 50},
}

// BenchmarkTableMemory fills a table with 1,000,000 logins of each mix and
// reports the Go heap it holds after a collection (what GOGC multiplies)
// and what it has mapped outside the Go heap (pages are resident only once
// written). Run with -benchtime 1x.
func BenchmarkTableMemory(b *testing.B) {
	const n = 1000000
	for _, mix := range memoryMixes {
		b.Run(mix.name, func(b *testing.B) {
			for range b.N {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				tab := NewTable(TableConfig{Grace: 10 * time.Hour, MaxEntries: 2 * n})
				for i := range n {
					a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
					if mix.v6(i) {
						var b16 [16]byte
						b16[0], b16[1], b16[2], b16[3], b16[11] = 0x20, 0x01, 0x0d, 0xb8, 1
						binary.BigEndian.PutUint32(b16[12:], uint32(i))
						a = netip.AddrFrom16(b16)
					}
					tab.Login(Grant{Addr: a, User: mix.user(i), Daemon: "dovecot", Host: fmt.Sprint("mx", i%mix.hosts)}, "", t0)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				mapped := tab.mem.Bytes()
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
				b.ReportMetric(float64(mapped)/(1<<20), "offheap-mapped-MiB")
				runtime.KeepAlive(tab)
				tab.Release()
			}
		})
	}
}
