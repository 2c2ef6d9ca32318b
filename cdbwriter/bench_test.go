package cdbwriter

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/grants"
)

// benchSizes are the table sizes of docs/BENCHMARKS.md.
var benchSizes = []int{10000, 100000, 1000000}

// benchAddr is the i-th address of a benchmark table: like relaygate-load's
// logins, 80% IPv4 in 10.0.0.0/8, 20% IPv6 in 2001:db8::/32.
func benchAddr(i int) netip.Addr {
	i++
	if i%5 == 0 {
		var b [16]byte
		b[0], b[1], b[2], b[3], b[11] = 0x20, 0x01, 0x0d, 0xb8, 1
		binary.BigEndian.PutUint32(b[12:], uint32(i))
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

func benchTable(n int) *grants.Table {
	tab := grants.NewTable(grants.TableConfig{Grace: time.Hour, MaxEntries: n})
	for i := range n {
		tab.Login(grants.Grant{Addr: benchAddr(i), User: fmt.Sprint("u", i), Daemon: "dovecot", Host: "mx1"}, "", t0)
	}
	return tab
}

// BenchmarkPublish is one map publish of a table of n grants, as the
// Service does it once per -flush when the set of addresses changed:
// temporary file, cdb, fsync, rename, directory fsync. The state file that
// goes before it is BenchmarkStateAppend (BenchmarkSaveState when it is
// rewritten whole); BenchmarkPostmap is postmap cdb:
// building the same map from a text file, for comparison in the same run.
func BenchmarkPublish(b *testing.B) {
	for _, n := range benchSizes {
		tab := benchTable(n)
		path := filepath.Join(b.TempDir(), "pbs.cdb")
		b.Run(fmt.Sprint("entries=", n), func(b *testing.B) {
			for range b.N {
				if err := writeTableMap(path, tab); err != nil {
					b.Fatal(err)
				}
			}
			fi, _ := os.Stat(path)
			b.ReportMetric(float64(fi.Size())/1e6, "MB")
		})
	}
}

// BenchmarkSaveState is one save of the whole state file for a table of n
// grants: at startup, at exit, and when appends made it three times the
// table.
func BenchmarkSaveState(b *testing.B) {
	for _, n := range benchSizes {
		tab := benchTable(n)
		path := filepath.Join(b.TempDir(), "pbs.state")
		b.Run(fmt.Sprint("entries=", n), func(b *testing.B) {
			for range b.N {
				if err := saveTable(path, tab, nil); err != nil {
					b.Fatal(err)
				}
			}
			fi, _ := os.Stat(path)
			b.ReportMetric(float64(fi.Size())/1e6, "MB")
		})
	}
}

// BenchmarkStateAppend is the state save before a publish under steady
// load: the lines of the 4,000 grants one second of 100,000 msg/s adds (4%
// of the stream are logins) and the tombstones of the 4,000 grants they
// evict from a full table, appended and synced.
func BenchmarkStateAppend(b *testing.B) {
	for _, n := range benchSizes {
		tab := benchTable(n)
		path := filepath.Join(b.TempDir(), "pbs.state")
		if err := saveTable(path, tab, nil); err != nil {
			b.Fatal(err)
		}
		tab.Saved()
		next := n
		b.Run(fmt.Sprint("entries=", n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				for range 4000 {
					tab.Login(grants.Grant{Addr: benchAddr(next), User: fmt.Sprint("u", next), Daemon: "dovecot", Host: "mx1"}, "", t0)
					next++
				}
				b.StartTimer()
				if _, err := appendState(path, tab); err != nil {
					b.Fatal(err)
				}
				tab.Saved()
			}
		})
	}
}

// BenchmarkPostmap is `postmap cdb:FILE` over the keys of BenchmarkPublish's
// table, one "ADDRESS OK" line each; skipped without postmap.
func BenchmarkPostmap(b *testing.B) {
	postmap, err := exec.LookPath("postmap")
	if err != nil {
		b.Skip("postmap not installed (apt-get install postfix postfix-cdb)")
	}
	for _, n := range benchSizes {
		src := filepath.Join(b.TempDir(), "pbs")
		f, err := os.Create(src)
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriter(f)
		for i := range n {
			fmt.Fprintf(w, "%s %s\n", Key(benchAddr(i)), MapValue)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		b.Run(fmt.Sprint("entries=", n), func(b *testing.B) {
			for range b.N {
				if out, err := exec.Command(postmap, "cdb:"+src).CombinedOutput(); err != nil {
					b.Fatalf("postmap: %v: %s", err, out)
				}
			}
		})
	}
}

// BenchmarkLogin is one new grant, evicting the oldest, in a full table of
// n, plus the Service's question for its next wake-up, as Run asks after
// every batch of events.
func BenchmarkLogin(b *testing.B) {
	for _, n := range benchSizes {
		tab := benchTable(n)
		svc := NewService(Config{MapPath: filepath.Join(b.TempDir(), "pbs.cdb")}, tab)
		b.Run(fmt.Sprint("entries=", n), func(b *testing.B) {
			i := n
			for range b.N {
				svc.login(grants.Grant{Addr: benchAddr(i), User: "u", Daemon: "dovecot", Host: "mx1"}, "", t0.Add(time.Duration(i)))
				svc.due()
				i++
			}
		})
	}
}

// BenchmarkStartup is what a restart does with the state file of n grants
// before it publishes the map: read the file into the table. The receiver
// is already bound meanwhile, so this is how long datagrams queue in the
// socket buffer before anything reads them. path=table is what a start
// does (loadFile, straight into the table); path=grants is what it did
// before, and relaygate list still does for its part: LoadState's Grant
// per address and map of every address, then Restore. B/op is what each
// allocates on the Go heap; the table's own arrays are outside it.
func BenchmarkStartup(b *testing.B) {
	for _, n := range benchSizes {
		path := filepath.Join(b.TempDir(), "pbs.state")
		if err := saveTable(path, benchTable(n), nil); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprint("path=table/entries=", n), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				tab := grants.NewTable(grants.TableConfig{Grace: time.Hour, MaxEntries: n})
				_, accounted, err := loadFile(os.OpenFile, path, stateLimitsFor(n), tab, defaultGrantable, t0)
				if err != nil {
					b.Fatal(err)
				}
				if tab.Len() != n || !accounted(benchAddr(0)) {
					b.Fatalf("restored %d of %d", tab.Len(), n)
				}
				tab.Release()
			}
		})
		b.Run(fmt.Sprint("path=grants/entries=", n), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				tab := grants.NewTable(grants.TableConfig{Grace: time.Hour, MaxEntries: n})
				gs, at, err := loadState(os.OpenFile, path, stateLimitsFor(n))
				if err != nil || len(at) != n {
					b.Fatalf("loadState: %d grants, %v", len(gs), err)
				}
				gs, _ = grantableOnly(gs, defaultGrantable)
				if got := tab.Restore(gs, t0); got != n {
					b.Fatalf("restored %d of %d", got, n)
				}
				tab.Release()
			}
		})
	}
}
