package main

// Process-level hardening tests: hostile input, kill -9 at random moments,
// disk full / read-only / unwritable state, and running unprivileged.
//
//	go test -race -count=1 -run 'Hostile|Kill9|DiskFull|ReadOnly|StateUnwritable|Unprivileged' -v ./cmd/relaygate/
//
// The mount and unprivileged tests need root (and CAP_SYS_ADMIN for mount);
// without it they skip, or fail under CI=true. Findings and figures are in
// docs/HARDENING.md.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/parsers"
	"github.com/relaygate/relaygate/receiver"
)

// requireStopCounters makes a "stopped" log line without the counters these
// tests check a failure. With false, the counter assertions run only for
// the counters the line has, and the rest are logged as TODO. The line has
// carried the receiver, pipeline and writer counters since the lead added
// d.counters(); set this to false only if they are taken out again.
const requireStopCounters = true

// requireFastPublishWithBadState makes the login-to-map latency with an
// unwritable state file a hard requirement (at most 2 s, the README's
// promise). TODO(lead): set to true once a failed state save no longer
// holds back map publishes (docs/HARDENING.md, finding 1); today
// the state's back-off doubles on every publish and the 7th login waits
// about 3 s.
const requireFastPublishWithBadState = true

// ---------------------------------------------------------------------------
// Environment

func inCI() bool { return os.Getenv("CI") == "true" }

// requireRoot skips a test that needs root, or fails it under CI=true.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if inCI() {
		t.Fatal("this test needs root (CI=true: failing instead of skipping)")
	}
	t.Skip("needs root: run the tests as root to include it")
}

// lookPostmap returns the path of postmap. Under CI=true a missing postmap
// fails the test; elsewhere it returns "" and the test checks the map with
// the Go readers only.
func lookPostmap(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("postmap")
	if err == nil {
		return p
	}
	if inCI() {
		t.Fatalf("postmap not installed (apt-get install postfix postfix-cdb): %v", err)
	}
	t.Logf("postmap not installed: checking the map with the Go readers only")
	return ""
}

func envInt(t *testing.T, name string, def int64) int64 {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return v
}

// ---------------------------------------------------------------------------
// Starting relaygate

// startRelaygate is startProcAs; kept as the name these tests read best with.
func startRelaygate(t *testing.T, exe string, cred *syscall.Credential, args ...string) *proc {
	t.Helper()
	return startProcAs(t, exe, cred, args...)
}

// runOnce runs relaygate serve that is expected to fail at startup. It
// reports the exit code and stderr, or started=true (and kills it) if it
// came up after all.
func runOnce(t *testing.T, exe string, cred *syscall.Credential, args ...string) (code int, stderr string, started bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, append([]string{"serve", "-log-format", "json", "-udp", "127.0.0.1:0", "-tcp", "", "-mynetworks", "none"}, args...)...)
	cmd.Env = append(os.Environ(), "RELAYGATE_TEST_MAIN=1")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var mu sync.Mutex
	var out bytes.Buffer
	cmd.Stderr = &lineLog{onLine: func(line []byte) {
		mu.Lock()
		defer mu.Unlock()
		out.Write(line)
		out.WriteByte('\n')
		if bytes.Contains(line, []byte(`"message":"relaygate listening"`)) {
			started = true
			cmd.Process.Kill()
		}
	}}
	err := cmd.Run()
	mu.Lock()
	defer mu.Unlock()
	if ctx.Err() != nil {
		t.Fatalf("relaygate neither started nor exited within 20 s:\n%s", out.String())
	}
	if err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), started
}

func procAlive(p *proc) bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func requireAlive(t *testing.T, p *proc) {
	t.Helper()
	if !procAlive(p) {
		t.Fatalf("relaygate died (%v)", p.cmd.ProcessState)
	}
}

// logEvents returns relaygate's JSON log lines, parsed.
func logEvents(p *proc) []map[string]any {
	var evs []map[string]any
	for _, line := range strings.Split(p.log(), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil {
			evs = append(evs, ev)
		}
	}
	return evs
}

func eventsWhere(p *proc, keep func(map[string]any) bool) []map[string]any {
	var out []map[string]any
	for _, ev := range logEvents(p) {
		if keep(ev) {
			out = append(out, ev)
		}
	}
	return out
}

func errorEvents(p *proc) []map[string]any {
	return eventsWhere(p, func(ev map[string]any) bool { return ev["level"] == "error" })
}

// grantedAddrs is the set of addresses relaygate logged as granted.
func grantedAddrs(p *proc) map[string]bool {
	got := map[string]bool{}
	for _, ev := range eventsWhere(p, func(ev map[string]any) bool { return ev["message"] == "granted" }) {
		if a, ok := ev["addr"].(string); ok {
			got[a] = true
		}
	}
	return got
}

// counterNames lists the names a counter may have in the "stopped" log
// line: the daemon's own field names and receiver.Stats.Snapshot's.
var counterNames = map[string][]string{
	"udp":            {"received_udp", "udp_messages"},
	"tcp":            {"received_tcp", "tcp_messages"},
	"too_long":       {"dropped_too_long", "too_long"},
	"malformed":      {"dropped_malformed", "malformed"},
	"unmatched":      {"unmatched"},
	"refused":        {"refused"},
	"logins":         {"logins"},
	"publish_errors": {"publish_errors"},
	"state_errors":   {"state_errors"},
}

// stopCounter looks a counter up in the "stopped" log line, at the top
// level or one object down (e.g. {"receiver":{"too_long":3}}), under any of
// its names in counterNames.
func stopCounter(stopped map[string]any, name string) (int64, bool) {
	names := counterNames[name]
	if names == nil {
		names = []string{name}
	}
	var found []float64
	var walk func(m map[string]any, depth int)
	walk = func(m map[string]any, depth int) {
		for k, v := range m {
			switch v := v.(type) {
			case float64:
				if slices.Contains(names, k) {
					found = append(found, v)
				}
			case map[string]any:
				if depth == 0 {
					walk(v, 1)
				}
			}
		}
	}
	walk(stopped, 0)
	if len(found) != 1 {
		return 0, false
	}
	return int64(found[0]), true
}

// ---------------------------------------------------------------------------
// Reading the map

// cdbHash is the cdb hash (djb2 with xor), as cdb, tinycdb and Postfix use.
func cdbHash(b []byte) uint32 {
	h := uint32(5381)
	for _, c := range b {
		h = ((h << 5) + h) ^ uint32(c)
	}
	return h
}

// readCDBStrict checks that path is one complete cdb and returns its keys,
// sorted. Unlike a plain reader it accounts for every byte: the 2048-byte
// header, records that end exactly where the hash tables start, hash tables
// that tile the rest of the file to its last byte, every record reachable
// through its hash slot, no other slots, no duplicate keys, every value
// "OK". A torn, truncated or half-written file fails.
func readCDBStrict(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	size := uint64(len(data))
	if size < 2048 {
		return nil, fmt.Errorf("%s: %d bytes, shorter than the cdb header", path, size)
	}
	if size > 1<<32 {
		return nil, fmt.Errorf("%s: over 4 GiB", path)
	}
	type table struct{ pos, slots uint32 }
	var tables [256]table
	recEnd := uint32(size)
	var tableBytes uint64
	for i := range tables {
		tb := table{binary.LittleEndian.Uint32(data[i*8:]), binary.LittleEndian.Uint32(data[i*8+4:])}
		if uint64(tb.pos) < 2048 || uint64(tb.pos)+uint64(tb.slots)*8 > size {
			return nil, fmt.Errorf("%s: hash table %d at %d with %d slots lies outside the file (%d bytes)", path, i, tb.pos, tb.slots, size)
		}
		if tb.slots > 0 && tb.pos < recEnd {
			recEnd = tb.pos
		}
		tableBytes += uint64(tb.slots) * 8
		tables[i] = tb
	}
	if uint64(recEnd)+tableBytes != size {
		return nil, fmt.Errorf("%s: records end at %d and hash tables take %d bytes, but the file has %d", path, recEnd, tableBytes, size)
	}
	// Tables must not overlap: sorted by position they are contiguous.
	var sorted []table
	for _, tb := range tables {
		if tb.slots > 0 {
			sorted = append(sorted, tb)
		}
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].pos < sorted[j].pos })
	next := recEnd
	for _, tb := range sorted {
		if tb.pos != next {
			return nil, fmt.Errorf("%s: hash tables overlap or leave a gap at %d", path, next)
		}
		next = tb.pos + tb.slots*8
	}
	type record struct {
		key string
		pos uint32
	}
	var recs []record
	seen := map[string]bool{}
	for off := uint64(2048); off < uint64(recEnd); {
		if off+8 > uint64(recEnd) {
			return nil, fmt.Errorf("%s: record header at %d cut by the hash tables", path, off)
		}
		klen := uint64(binary.LittleEndian.Uint32(data[off:]))
		dlen := uint64(binary.LittleEndian.Uint32(data[off+4:]))
		end := off + 8 + klen + dlen
		if end > uint64(recEnd) {
			return nil, fmt.Errorf("%s: record at %d (%d+%d bytes) runs into the hash tables", path, off, klen, dlen)
		}
		key := string(data[off+8 : off+8+klen])
		if v := string(data[off+8+klen : end]); v != cdbwriter.MapValue {
			return nil, fmt.Errorf("%s: key %q has value %q", path, key, v)
		}
		if seen[key] {
			return nil, fmt.Errorf("%s: duplicate key %q", path, key)
		}
		seen[key] = true
		recs = append(recs, record{key, uint32(off)})
		off = end
	}
	used := 0
	for _, tb := range tables {
		for s := uint32(0); s < tb.slots; s++ {
			if binary.LittleEndian.Uint32(data[tb.pos+s*8+4:]) != 0 {
				used++
			}
		}
	}
	if used != len(recs) {
		return nil, fmt.Errorf("%s: %d records but %d used hash slots", path, len(recs), used)
	}
	for _, r := range recs {
		h := cdbHash([]byte(r.key))
		tb := tables[h&255]
		found := false
		for i := uint32(0); i < tb.slots && !found; i++ {
			slot := tb.pos + ((h>>8)%tb.slots+i)%tb.slots*8
			sh, sp := binary.LittleEndian.Uint32(data[slot:]), binary.LittleEndian.Uint32(data[slot+4:])
			if sp == 0 {
				break
			}
			found = sh == h && sp == r.pos
		}
		if !found {
			return nil, fmt.Errorf("%s: key %q cannot be found through its hash slot", path, r.key)
		}
	}
	keys := make([]string, len(recs))
	for i, r := range recs {
		keys[i] = r.key
	}
	sort.Strings(keys)
	return keys, nil
}

// postmapSentinel is never grantable, so it is never in the map; it makes
// every postmap run open the map even when there is nothing else to ask.
const postmapSentinel = "0.0.0.0"

// postmapLookup asks the real postmap for every key in one run (postmap -q -
// reads keys from stdin) and returns the ones it found with the value OK.
// An error means postmap could not read the map.
func postmapLookup(postmap, mapPath string, keys []string) (map[string]bool, error) {
	cmd := exec.Command(postmap, "-q", "-", "cdb:"+strings.TrimSuffix(mapPath, ".cdb"))
	cmd.Stdin = strings.NewReader(strings.Join(append(slices.Clone(keys), postmapSentinel), "\n") + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	// postmap -q exits 1 both when nothing was found and on a fatal error;
	// only the latter says so on stderr.
	if strings.Contains(stderr.String(), "fatal") || (err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1)) {
		return nil, fmt.Errorf("postmap -q - cdb:%s: %v: %s", mapPath, err, strings.TrimSpace(stderr.String()))
	}
	found := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "\t"); ok && v == cdbwriter.MapValue {
			found[k] = true
		}
	}
	if found[postmapSentinel] {
		return nil, fmt.Errorf("postmap finds %s in %s", postmapSentinel, mapPath)
	}
	return found, nil
}

// postmapSequence lists the map with postmap -s. Postfix 3.7's cdb client
// has no sequence operation ("sequence operation is not supported"); then
// supported is false and the caller relies on readCDBStrict plus lookups.
func postmapSequence(postmap, mapPath string) (keys []string, supported bool, err error) {
	cmd := exec.Command(postmap, "-s", "cdb:"+strings.TrimSuffix(mapPath, ".cdb"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if strings.Contains(stderr.String(), "sequence operation is not supported") {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, fmt.Errorf("postmap -s: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, _, ok := strings.Cut(line, "\t"); ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, true, nil
}

// checkMapWithPostmap asserts that the real postmap opens the map and finds
// every key in want (and, where postmap -s works, lists exactly want).
func checkMapWithPostmap(t *testing.T, postmap, mapPath string, want []string) {
	t.Helper()
	if postmap == "" {
		return
	}
	found, err := postmapLookup(postmap, mapPath, want)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, k := range want {
		if !found[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("postmap does not find %d of %d keys in %s: %v", len(missing), len(want), mapPath, firstN(missing, 10))
	}
	if !postmapCanSequence(t, postmap) {
		return
	}
	if keys, _, err := postmapSequence(postmap, mapPath); err != nil {
		t.Fatal(err)
	} else if !slices.Equal(keys, want) {
		t.Fatalf("postmap -s lists %d keys, want %d", len(keys), len(want))
	}
}

var postmapSeq struct {
	once sync.Once
	ok   bool
}

// postmapCanSequence probes once whether postmap -s can list a cdb map
// (Postfix 3.7 cannot; a failing postmap also sleeps a second before it
// exits, so asking every time would be slow).
func postmapCanSequence(t *testing.T, postmap string) bool {
	t.Helper()
	postmapSeq.once.Do(func() {
		dir, err := os.MkdirTemp("", "relaygate-postmap-probe-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		probe := filepath.Join(dir, "probe.cdb")
		if err := cdbwriter.WriteMap(probe, nil); err != nil {
			t.Fatal(err)
		}
		_, ok, err := postmapSequence(postmap, probe)
		postmapSeq.ok = ok && err == nil
		if !postmapSeq.ok {
			t.Logf("postmap -s cannot list a cdb map here (Postfix's cdb client has no sequence operation): "+
				"completeness is checked with readCDBStrict, and every key with postmap -q (err %v)", err)
		}
	})
	return postmapSeq.ok
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// missingFrom returns the elements of want that are not in have (sorted).
func missingFrom(want, have []string) []string {
	var out []string
	for _, k := range want {
		if _, ok := slices.BinarySearch(have, k); !ok {
			out = append(out, k)
		}
	}
	return out
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// dirEntries lists the names in dir, sorted.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.Name()
	}
	return names
}

func tempLeftovers(t *testing.T, dir string) int {
	n := 0
	for _, name := range dirEntries(t, dir) {
		if strings.HasPrefix(name, ".relaygate-tmp-") {
			n++
		}
	}
	return n
}

func loginLine(addr string) string { return fmt.Sprintf(dovecotLogin, addr) }

// ---------------------------------------------------------------------------
// Mounts

func mountOrSkip(t *testing.T, source, target, fstype string, flags uintptr, data string) {
	t.Helper()
	err := syscall.Mount(source, target, fstype, flags, data)
	if err == nil {
		return
	}
	if errors.Is(err, syscall.EPERM) && !inCI() {
		t.Skipf("cannot mount (no CAP_SYS_ADMIN here?): %v", err)
	}
	t.Fatalf("mount %s on %s: %v", source, target, err)
}

// mountTmpfs mounts a tmpfs of size on dir until the test ends.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	mountOrSkip(t, "tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755")
	t.Cleanup(func() { unmount(t, dir) })
}

// bindMount bind-mounts dir onto itself, so it can be remounted read-only
// without touching anything else.
func bindMount(t *testing.T, dir string) {
	t.Helper()
	mountOrSkip(t, dir, dir, "", syscall.MS_BIND, "")
	t.Cleanup(func() { unmount(t, dir) })
}

// remount makes a mount made by mountTmpfs or bindMount read-only or
// read-write again.
func remount(t *testing.T, dir string, bind, readOnly bool) {
	t.Helper()
	flags := uintptr(syscall.MS_REMOUNT)
	if bind {
		flags |= syscall.MS_BIND
	}
	if readOnly {
		flags |= syscall.MS_RDONLY
	}
	if err := syscall.Mount("", dir, "", flags, ""); err != nil {
		t.Fatalf("remount %s (read-only %v): %v", dir, readOnly, err)
	}
}

func unmount(t *testing.T, dir string) {
	t.Helper()
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err = syscall.Unmount(dir, 0); err == nil || !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("unmount %s: %v; detaching it", dir, err)
		syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	if mounted(t, dir) {
		t.Errorf("%s is still mounted after the test", dir)
	}
}

// mounted reports whether dir is a mount point in /proc/self/mountinfo.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && unescapeMountinfo(f[4]) == dir {
			return true
		}
	}
	return false
}

func unescapeMountinfo(s string) string {
	for _, r := range []struct{ from, to string }{{`\040`, " "}, {`\011`, "\t"}, {`\012`, "\n"}, {`\134`, `\`}} {
		s = strings.ReplaceAll(s, r.from, r.to)
	}
	return s
}

// realDir creates dir and returns it with symlinks resolved, as mountinfo
// shows it.
func realDir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ---------------------------------------------------------------------------
// 1. Hostile corpus

type hostileMsg struct {
	name string
	data []byte
}

const hostileDir = "../../testdata/hostile"

func loadHostileCorpus(t *testing.T) []hostileMsg {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(hostileDir, "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	var out []hostileMsg
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, hostileMsg{filepath.Base(f), data})
	}
	if len(out) < 60 {
		t.Fatalf("%s holds %d messages, want at least 60", hostileDir, len(out))
	}
	return out
}

// maxUDPPayload is the largest IPv4 UDP datagram payload.
const maxUDPPayload = 65507

// breaksNewlineStream reports whether a message would be read as an
// RFC 6587 length field in a newline-framed stream (a line starting with a
// non-zero digit), swallowing or closing the rest of the stream. Such
// messages get their own connection in the newline-framed pass.
func breaksNewlineStream(b []byte) bool {
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(line) > 0 && line[0] >= '1' && line[0] <= '9' {
			return true
		}
	}
	return false
}

// pipelineTally is what the daemon's handle made of a batch of messages.
type pipelineTally struct {
	malformed, empty, unmatched, refused, correlated, logins int64
	grants                                                   []string
}

// tallyOffline runs messages through the receiver's envelope parser, every
// built-in parser and one two-line correlator, in order, the way the
// daemon's pipeline does, and reports what each would do. It names every
// message that would grant. It uses only the packages' exported API, so it
// does not depend on the daemon's internals.
func tallyOffline(t *testing.T, msgs []hostileMsg, split bool) pipelineTally {
	t.Helper()
	builtin, err := parsers.SelectBuiltin([]string{"all"})
	if err != nil {
		t.Fatal(err)
	}
	set := parsers.NewSet(builtin...)
	corr := parsers.NewCorrelator(10000, 2*time.Minute)
	var tl pipelineTally
	now := time.Now()
	for _, m := range msgs {
		parts := [][]byte{m.data}
		if split {
			parts = bytes.Split(m.data, []byte("\n"))
		}
		for _, raw := range parts {
			if len(raw) > receiver.DefaultMaxMessage {
				continue
			}
			env, err := receiver.ParseEnvelope(raw)
			if err != nil {
				if len(bytes.TrimRightFunc(raw, func(r rune) bool { return r < 0x20 })) == 0 {
					tl.empty++
				} else {
					tl.malformed++
				}
				continue
			}
			msg := parsers.Message{Host: env.Host, Program: env.Program, PID: env.PID, Text: env.Text}
			ev, err := set.Parse(msg)
			var addrErr *parsers.AddrError
			switch {
			case errors.As(err, &addrErr):
				corr.Forget(msg)
				tl.refused++
				continue
			case err != nil:
				tl.unmatched++
				continue
			}
			ev, ok, _ := corr.Feed(msg, ev, now)
			switch {
			case ok && ev.Kind == parsers.Login:
				tl.logins++
				tl.grants = append(tl.grants, fmt.Sprintf("%s grants %s", m.name, ev.Addr))
			default:
				tl.correlated++ // connect, auth, fail or logout: no pipeline counter
			}
		}
	}
	return tl
}

var (
	ipv4Token = regexp.MustCompile(`[0-9]{1,3}(?:\.[0-9]{1,3}){3}`)
	ipv6Token = regexp.MustCompile(`[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3})?`)
)

// corpusAddrs returns every valid address that appears in the corpus, as a
// map key (unmapped), so the test can ask postmap about each.
func corpusAddrs(msgs []hostileMsg) []string {
	set := map[string]bool{"6.6.6.6": true, "203.0.113.66": true, "2001:db8::666": true}
	for _, m := range msgs {
		for _, re := range []*regexp.Regexp{ipv4Token, ipv6Token} {
			for _, tok := range re.FindAll(m.data, -1) {
				if a, err := netip.ParseAddr(string(tok)); err == nil {
					set[a.Unmap().String()] = true
				}
			}
		}
	}
	var out []string
	for a := range set {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// udpSocketStats reads the receive queue and drop count of the loopback
// UDP socket bound to addr from /proc/net/udp.
func udpSocketStats(addr string) (rxQueue, drops int64, ok bool) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || ap.Addr() != netip.MustParseAddr("127.0.0.1") {
		return 0, 0, false
	}
	data, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0, 0, false
	}
	want := fmt.Sprintf("0100007F:%04X", ap.Port())
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 13 || f[1] != want {
			continue
		}
		_, rx, _ := strings.Cut(f[4], ":")
		q, err1 := strconv.ParseInt(rx, 16, 64)
		d, err2 := strconv.ParseInt(f[12], 10, 64)
		return q, d, err1 == nil && err2 == nil
	}
	return 0, 0, false
}

// waitUDPDrained waits until relaygate has read every datagram queued on its
// UDP socket, so a burst of large datagrams never overflows the receive
// buffer and every message is really received.
func waitUDPDrained(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, _, ok := udpSocketStats(addr)
		if !ok || q == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("relaygate did not read its UDP queue (%d bytes) within 10 s", q)
		}
		time.Sleep(time.Millisecond)
	}
}

// sendStream writes stream on a new TCP connection, half-closes it and reads
// until relaygate closes its end: then relaygate has read and delivered
// every message on it (or dropped the connection on bad framing).
func sendStream(t *testing.T, addr string, stream []byte, mayBeRefused bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(stream); err != nil && !mayBeRefused {
		t.Fatalf("write %d bytes: %v", len(stream), err)
	}
	c.(*net.TCPConn).CloseWrite()
	if _, err := io.Copy(io.Discard, c); err != nil && !mayBeRefused {
		t.Fatalf("waiting for relaygate to close the connection: %v", err)
	}
}

// TestHostileCorpus sends every message of testdata/hostile to a running
// relaygate over UDP, newline-framed TCP and octet-counted TCP. relaygate
// must stay up, grant nothing from them, and count them.
func TestHostileCorpus(t *testing.T) {
	corpus := loadHostileCorpus(t)
	postmap := lookPostmap(t)

	// In-process first: names the message if one grants.
	whole := tallyOffline(t, corpus, false)
	lines := tallyOffline(t, corpus, true)
	for _, g := range append(whole.grants, lines.grants...) {
		t.Errorf("in-process: %s", g)
	}
	t.Logf("in-process, whole messages: %d malformed, %d empty, %d unmatched, %d refused, %d two-line/logout events counted nowhere",
		whole.malformed, whole.empty, whole.unmatched, whole.refused, whole.correlated)

	dir := t.TempDir()
	mapPath := filepath.Join(dir, "pbs.cdb")
	p := startRelaygate(t, testExecutable(t), nil, "-map", mapPath, "-flush", "20ms", "-mynetworks", "none")
	barriers := []string{"192.0.2.200", "192.0.2.201", "192.0.2.202"}
	barrierLogins := 0

	// UDP: one datagram per message, each read before the next is sent.
	var udpSent, udpSkipped int
	var udpForTally []hostileMsg
	c, err := net.Dial("udp", p.udp)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range corpus {
		if len(m.data) > maxUDPPayload {
			udpSkipped++
			continue
		}
		if _, err := c.Write(m.data); err != nil {
			t.Fatalf("send %s: %v", m.name, err)
		}
		udpSent++
		udpForTally = append(udpForTally, m)
		waitUDPDrained(t, p.udp)
	}
	c.Write([]byte(loginLine(barriers[0])))
	barrierLogins++
	c.Close()
	waitFor(t, 5*time.Second, "UDP barrier login in the map", func() bool { return postmapQuery(t, mapPath, barriers[0]) })
	_, udpDrops, udpStatsOK := udpSocketStats(p.udp)
	requireAlive(t, p)

	// TCP, newline framing: one connection for the stream-safe messages,
	// one each for those auto-detection would read as a length field.
	var nl bytes.Buffer
	var nlIsolated [][]byte
	for _, m := range corpus {
		if breaksNewlineStream(m.data) {
			nlIsolated = append(nlIsolated, m.data)
			continue
		}
		nl.Write(m.data)
		nl.WriteByte('\n')
	}
	nl.WriteString(loginLine(barriers[1]) + "\n")
	barrierLogins++
	sendStream(t, p.tcp, nl.Bytes(), false)
	for _, m := range nlIsolated {
		sendStream(t, p.tcp, append(slices.Clone(m), '\n'), true)
	}
	waitFor(t, 5*time.Second, "newline-framed TCP barrier login in the map", func() bool { return postmapQuery(t, mapPath, barriers[1]) })
	requireAlive(t, p)

	// TCP, octet counting, all on one connection (RFC 6587 has no empty frame).
	var oc bytes.Buffer
	var ocFrames, ocTooLong int
	var ocForTally []hostileMsg
	for _, m := range corpus {
		if len(m.data) == 0 {
			continue
		}
		fmt.Fprintf(&oc, "%d ", len(m.data))
		oc.Write(m.data)
		ocFrames++
		if len(m.data) > receiver.DefaultMaxMessage {
			ocTooLong++
		} else {
			ocForTally = append(ocForTally, m)
		}
	}
	oc.WriteString(octet(loginLine(barriers[2])))
	barrierLogins++
	sendStream(t, p.tcp, oc.Bytes(), false)
	waitFor(t, 5*time.Second, "octet-counted TCP barrier login in the map", func() bool { return postmapQuery(t, mapPath, barriers[2]) })
	requireAlive(t, p)

	t.Logf("inputs tried: %d corpus messages; %d UDP datagrams (%d too big for UDP), %d newline-framed on one TCP connection + %d on their own, %d octet-counted frames; plus %d barrier logins",
		len(corpus), udpSent, udpSkipped, len(corpus)-len(nlIsolated), len(nlIsolated), ocFrames, barrierLogins)

	// Nothing but the barriers is granted, by the Go reader and by postmap.
	keys, err := readCDBStrict(mapPath)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, barriers) {
		t.Errorf("map holds %v, want exactly the barrier logins %v", keys, barriers)
	}
	if got, err := cdbwriter.ReadMap(mapPath); err != nil || len(got) != len(barriers) {
		t.Errorf("cdbwriter.ReadMap: %v, %v", got, err)
	}
	addrs := corpusAddrs(corpus)
	if postmap != "" {
		found, err := postmapLookup(postmap, mapPath, append(slices.Clone(addrs), barriers...))
		if err != nil {
			t.Fatal(err)
		}
		leaked := 0
		for _, a := range addrs {
			if found[a] && !slices.Contains(barriers, a) {
				leaked++
				t.Errorf("postmap finds %s, an address from the hostile corpus", a)
			}
		}
		for _, b := range barriers {
			if !found[b] {
				t.Errorf("postmap does not find barrier %s", b)
			}
		}
		t.Logf("postmap -q: %d of the %d addresses in the corpus are in the map", leaked, len(addrs))
	}
	if g := grantedAddrs(p); len(g) != len(barriers) {
		t.Errorf("relaygate logged grants for %v, want only the barriers", g)
	}
	if n := len(errorEvents(p)); n > 0 {
		t.Errorf("%d error lines in the log", n)
	}
	if logLines := strings.Count(p.log(), "\n"); logLines >= len(corpus) {
		t.Errorf("%d log lines for %d hostile messages: bad input must not flood the log", logLines, len(corpus))
	} else {
		t.Logf("%d log lines in all", logLines)
	}

	// A clean stop drains everything received and writes once more: a late
	// grant from any message would show now.
	if code := p.stop(t, syscall.SIGTERM, 5*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	if keys, err := readCDBStrict(mapPath); err != nil || !slices.Equal(keys, barriers) {
		t.Errorf("map after shutdown: %v, %v; want exactly %v", keys, err, barriers)
	}

	// Counting. relaygate must have counted every hostile input.
	stopped := eventsWhere(p, func(ev map[string]any) bool { return ev["message"] == "stopped" })
	if len(stopped) != 1 {
		t.Fatalf("want one \"stopped\" log line, got %d", len(stopped))
	}
	udpTally := tallyOffline(t, udpForTally, false)
	ocTally := tallyOffline(t, ocForTally, false)
	type want struct {
		name  string
		min   int64
		exact bool
	}
	wants := []want{
		// Every hostile message is a login in no transport: the only
		// logins are the barriers.
		{"logins", int64(barrierLogins), true},
		{"too_long", int64(2 * ocTooLong), false},                        // newline and octet passes
		{"malformed", udpTally.malformed + ocTally.malformed + 1, false}, // +1: the 10-digit length field
		{"unmatched", udpTally.unmatched + ocTally.unmatched, false},
		{"refused", udpTally.refused + ocTally.refused, false},
		{"tcp", int64(ocFrames - ocTooLong + 1), false},
	}
	if udpStatsOK && udpDrops == 0 {
		wants = append(wants, want{"udp", int64(udpSent + 1), true})
	} else {
		t.Logf("UDP drops %d (stats readable: %v): not checking the exact UDP count", udpDrops, udpStatsOK)
	}
	missing := 0
	for _, w := range wants {
		got, ok := stopCounter(stopped[0], w.name)
		switch {
		case !ok:
			missing++
		case w.exact && got != w.min:
			t.Errorf("counter %s = %d, want %d", w.name, got, w.min)
		case !w.exact && got < w.min:
			t.Errorf("counter %s = %d, want at least %d", w.name, got, w.min)
		default:
			t.Logf("counter %s = %d (want %s%d)", w.name, got, map[bool]string{true: "", false: "≥ "}[w.exact], w.min)
		}
	}
	if missing > 0 {
		msg := fmt.Sprintf("TODO(lead): the \"stopped\" log line has %d of the %d counters this test checks (%s); "+
			"expected at shutdown: udp=%d exactly, logins=%d exactly, too_long≥%d, malformed≥%d, unmatched≥%d, refused≥%d, tcp≥%d",
			len(wants)-missing, len(wants), mustJSON(stopped[0]), udpSent+1, barrierLogins, 2*ocTooLong,
			udpTally.malformed+ocTally.malformed+1, udpTally.unmatched+ocTally.unmatched, udpTally.refused+ocTally.refused, ocFrames-ocTooLong+1)
		if requireStopCounters {
			t.Error(msg)
		} else {
			t.Log(msg)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// ---------------------------------------------------------------------------
// 2. kill -9 loop

// TestKill9Loop kills relaygate with SIGKILL at random moments of a stream
// of logins, at least 200 times on one map and state. After every kill the
// map must be a complete cdb that postmap reads, and the next start must
// publish every grant that was in the map when the process was killed.
//
// RELAYGATE_KILL9_SEED reproduces a run's kill moments;
// RELAYGATE_KILL9_ITERATIONS changes the number of kills.
func TestKill9Loop(t *testing.T) {
	postmap := lookPostmap(t)
	iterations := int(envInt(t, "RELAYGATE_KILL9_ITERATIONS", 200))
	seed := envInt(t, "RELAYGATE_KILL9_SEED", time.Now().UnixNano())
	t.Logf("seed %d (RELAYGATE_KILL9_SEED=%d reproduces the kill moments)", seed, seed)
	rng := rand.New(rand.NewSource(seed))

	dir := t.TempDir()
	mapPath := filepath.Join(dir, "pbs.cdb")
	statePath := filepath.Join(dir, "pbs.state")

	var (
		published  []string // keys in the map file right after the last kill
		lastInode  uint64
		kills      int
		sent       int
		checked    int
		lost       int
		midWrite   int
		maxDelay   time.Duration
		nextAddr   = 1
		wallStart  = time.Now()
		startTimes time.Duration
	)
	addr := func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i/(254*256)%256, i/254%256, i%254+1) }

	for i := 0; ; i++ {
		t0 := time.Now()
		p := startProc(t, "-map", mapPath, "-flush", "10ms", "-grace", "24h")
		startTimes += time.Since(t0)

		// relaygate published the map before it said it was listening.
		if i > 0 {
			if ino := inode(t, mapPath); ino == lastInode {
				t.Fatalf("restart %d: the map file is the one the killed process left (inode %d): no startup publish", i, ino)
			}
		}
		keys, err := readCDBStrict(mapPath)
		if err != nil {
			t.Fatalf("restart %d: %v", i, err)
		}
		if miss := missingFrom(published, keys); len(miss) > 0 {
			lost += len(miss)
			t.Errorf("restart %d: %d of %d grants published before kill %d are gone: %v", i, len(miss), len(published), i, firstN(miss, 10))
		}
		checked += len(published)
		checkMapWithPostmap(t, postmap, mapPath, keys)
		if n := tempLeftovers(t, dir); n > 0 {
			t.Errorf("restart %d: %d temporary files left after startup: %v", i, n, dirEntries(t, dir))
		}
		if i == iterations {
			if code := p.stop(t, syscall.SIGTERM, 5*time.Second); code != 0 {
				t.Errorf("exit code %d after SIGTERM", code)
			}
			break
		}

		// A stream of logins from fresh addresses, one per millisecond.
		stop := make(chan struct{})
		done := make(chan int)
		go func(first int) {
			c, err := net.Dial("udp", p.udp)
			if err != nil {
				done <- 0
				return
			}
			defer c.Close()
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			n := 0
			for {
				c.Write([]byte(loginLine(addr(first + n))))
				n++
				select {
				case <-stop:
					done <- n
					return
				case <-tick.C:
				}
			}
		}(nextAddr)

		// The random moment. What is in the map now was published before
		// the kill.
		delay := time.Duration(5+rng.Intn(46)) * time.Millisecond
		maxDelay = max(maxDelay, delay)
		time.Sleep(delay)
		before, err := readCDBStrict(mapPath)
		if err != nil {
			t.Fatalf("kill %d: map unreadable while running: %v", i+1, err)
		}
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.exited
		close(stop)
		n := <-done
		nextAddr += n
		sent += n
		kills++

		after, err := readCDBStrict(mapPath)
		if err != nil {
			t.Fatalf("kill %d left a broken map: %v", kills, err)
		}
		if miss := missingFrom(before, after); len(miss) > 0 {
			t.Fatalf("kill %d: keys published before the kill are not in the map after it: %v", kills, firstN(miss, 10))
		}
		checkMapWithPostmap(t, postmap, mapPath, after)
		if tempLeftovers(t, dir) > 0 {
			midWrite++ // the kill interrupted a write
		}
		lastInode = inode(t, mapPath)
		published = after
	}

	if got := dirEntries(t, dir); !slices.Equal(got, []string{"pbs.cdb", "pbs.cdb.lock", "pbs.state", "pbs.state.lock"}) {
		t.Errorf("map directory holds %v, want only the map, the state file and their locks", got)
	}
	if _, err := os.Stat(statePath); err != nil {
		t.Error(err)
	}
	if lost > 0 {
		t.Errorf("%d grants lost", lost)
	}
	t.Logf("kill -9: %d kills survived, %d logins sent, %d grants checked after restarts, %d lost; %d kills left a temporary file (interrupted a write); final map %d keys; kill after 5–%v; mean start %v; wall time %v",
		kills, sent, checked, lost, midWrite, len(published), maxDelay, (startTimes / time.Duration(kills+1)).Round(time.Millisecond), time.Since(wallStart).Round(time.Millisecond))
}

// ---------------------------------------------------------------------------
// 3. Disk full, read-only map directory, unwritable state

// writeFaultCase is the part TestDiskFull and TestMapDirReadOnly share: with
// relaygate running on dir and one grant published, fault() breaks writes;
// relaygate must keep running and granting in memory, keep the previous map
// intact, log the error (mentioning errText) and retry with back-off; after
// heal() it must publish every grant.
func writeFaultCase(t *testing.T, dir string, fault, heal func(), errText string) {
	postmap := lookPostmap(t)
	mapPath := filepath.Join(dir, "pbs.cdb")
	p := startRelaygate(t, testExecutable(t), nil, "-map", mapPath, "-flush", "50ms", "-grace", "1h")
	first := "192.0.2.10"
	sendUDP(t, p.udp, loginLine(first))
	waitFor(t, 5*time.Second, "first login in the map", func() bool { return postmapQuery(t, mapPath, first) })
	old, err := os.ReadFile(mapPath)
	if err != nil {
		t.Fatal(err)
	}

	fault()
	faulted := time.Now()
	var more []string
	for i := 1; i <= 40; i++ {
		more = append(more, fmt.Sprintf("198.51.100.%d", i))
	}
	for _, a := range more {
		sendUDP(t, p.udp, loginLine(a))
	}
	// Granted in memory: one "granted" line each.
	waitFor(t, 5*time.Second, "every new login granted in memory", func() bool {
		g := grantedAddrs(p)
		for _, a := range more {
			if !g[a] {
				return false
			}
		}
		return true
	})
	// Logged as errors, each writer (map, state) retried with its own
	// growing back-off.
	mapErrors := func() []map[string]any {
		return eventsWhere(p, func(ev map[string]any) bool {
			msg, _ := ev["message"].(string)
			return ev["level"] == "error" && strings.HasPrefix(msg, "map write failed")
		})
	}
	waitFor(t, 15*time.Second, "three failed map writes logged", func() bool { return len(mapErrors()) >= 3 })
	errs := errorEvents(p)
	for _, ev := range errs {
		msg, _ := ev["error"].(string)
		if !strings.Contains(msg, errText) {
			t.Errorf("error line does not say %q: %s", errText, mustJSON(ev))
		}
	}
	var retries []float64
	for _, ev := range mapErrors() {
		if r, ok := ev["retry_in"].(float64); ok {
			retries = append(retries, r)
		}
	}
	if len(retries) < 3 || !(retries[0] < retries[1] && retries[1] < retries[2]) {
		t.Errorf("retry_in of the first map failures = %v ms, want growing back-off", retries)
	}
	t.Logf("first error: %s", mustJSON(errs[0]))
	t.Logf("retry_in of %d map failures within %v: %v ms", len(retries), time.Since(faulted).Round(time.Millisecond), retries)

	requireAlive(t, p)
	now, err := os.ReadFile(mapPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(now, old) {
		t.Fatalf("the map changed while writes failed (%d bytes, was %d)", len(now), len(old))
	}
	if keys, err := readCDBStrict(mapPath); err != nil || !slices.Equal(keys, []string{first}) {
		t.Fatalf("map while writes fail: %v, %v; want the previous map [%s]", keys, err, first)
	}
	checkMapWithPostmap(t, postmap, mapPath, []string{first})
	if n := tempLeftovers(t, dir); n > 0 {
		t.Errorf("%d temporary files left by failed writes: %v", n, dirEntries(t, dir))
	}

	heal()
	cleared := time.Now()
	all := append([]string{first}, more...)
	sort.Strings(all)
	waitFor(t, 40*time.Second, "every grant in the map once writes work again", func() bool {
		keys, err := readCDBStrict(mapPath)
		return err == nil && slices.Equal(keys, all)
	})
	t.Logf("published %d grants %v after the fault cleared (%d error lines in all)", len(all), time.Since(cleared).Round(time.Millisecond), len(errorEvents(p)))
	checkMapWithPostmap(t, postmap, mapPath, all)
	grants, err := cdbwriter.LoadState(strings.TrimSuffix(mapPath, ".cdb") + ".state")
	if err != nil {
		t.Fatal(err)
	}
	if len(grants) != len(all) {
		t.Errorf("state file holds %d grants, want %d", len(grants), len(all))
	}
	requireAlive(t, p)
	failures := len(mapErrors())
	if code := p.stop(t, syscall.SIGTERM, 5*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	if got := dirEntries(t, dir); !slices.Equal(got, []string{"pbs.cdb", "pbs.cdb.lock", "pbs.state", "pbs.state.lock"}) {
		t.Errorf("map directory holds %v, want only the map, the state file and their locks", got)
	}
	// Every failed publish was counted.
	checkStopCounters(t, p, map[string]int64{"publish_errors": int64(failures)})
}

// checkStopCounters asserts that the "stopped" log line has each counter at
// least at its minimum.
func checkStopCounters(t *testing.T, p *proc, min map[string]int64) {
	t.Helper()
	stopped := eventsWhere(p, func(ev map[string]any) bool { return ev["message"] == "stopped" })
	if len(stopped) != 1 {
		t.Fatalf("want one \"stopped\" log line, got %d", len(stopped))
	}
	for name, want := range min {
		got, ok := stopCounter(stopped[0], name)
		switch {
		case !ok && requireStopCounters:
			t.Errorf("the \"stopped\" line has no counter %s: %s", name, mustJSON(stopped[0]))
		case !ok:
			t.Logf("TODO(lead): the \"stopped\" line has no counter %s (want ≥ %d)", name, want)
		case got < want:
			t.Errorf("counter %s = %d, want at least %d", name, got, want)
		default:
			t.Logf("counter %s = %d (want ≥ %d)", name, got, want)
		}
	}
}

func testExecutable(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// TestDiskFull: map and state on a 64 KiB tmpfs that a filler file fills up.
func TestDiskFull(t *testing.T) {
	requireRoot(t)
	dir := realDir(t, filepath.Join(t.TempDir(), "tmpfs"))
	mountTmpfs(t, dir, "64k")
	filler := filepath.Join(dir, "filler")
	writeFaultCase(t, dir, func() {
		n := fillDisk(t, filler)
		var st syscall.Statfs_t
		syscall.Statfs(dir, &st)
		t.Logf("filler: %d bytes; %d bytes free", n, st.Bavail*uint64(st.Bsize))
	}, func() {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	}, "no space left on device")
}

// fillDisk writes path until the file system is full and returns its size.
func fillDisk(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	for _, chunk := range []int{4096, 512, 1} {
		buf := make([]byte, chunk)
		for {
			m, err := f.Write(buf)
			n += int64(m)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return n
}

// TestMapDirReadOnly: the map directory (a bind mount of itself) is
// remounted read-only while relaygate runs, then read-write again. As root,
// file permissions would not stop the writes.
func TestMapDirReadOnly(t *testing.T) {
	requireRoot(t)
	dir := realDir(t, filepath.Join(t.TempDir(), "map"))
	bindMount(t, dir)
	writeFaultCase(t, dir,
		func() { remount(t, dir, true, true) },
		func() { remount(t, dir, true, false) },
		"read-only file system")
}

// TestStateUnwritable: the state file's directory turns read-only while the
// map directory stays writable. Grants must still reach Postfix, the error
// must be logged, and the state must be saved once it can be.
func TestStateUnwritable(t *testing.T) {
	requireRoot(t)
	postmap := lookPostmap(t)
	base := t.TempDir()
	mapDir := realDir(t, filepath.Join(base, "map"))
	stateDir := realDir(t, filepath.Join(base, "state"))
	bindMount(t, stateDir)
	mapPath := filepath.Join(mapDir, "pbs.cdb")
	statePath := filepath.Join(stateDir, "pbs.state")

	t.Run("at startup", func(t *testing.T) {
		// Observed, not prescribed: today a state file that cannot be
		// written at startup stops relaygate with a one-line error.
		remount(t, stateDir, true, true)
		defer remount(t, stateDir, true, false)
		code, stderr, started := runOnce(t, testExecutable(t), nil, "-map", filepath.Join(mapDir, "startup.cdb"), "-state", statePath)
		switch {
		case started:
			t.Logf("relaygate starts with an unwritable state file")
		case code == 0:
			t.Errorf("relaygate exited 0 without starting:\n%s", stderr)
		case !strings.Contains(stderr, statePath):
			t.Errorf("startup failure does not name the state file %s:\n%s", statePath, stderr)
		default:
			t.Logf("relaygate refuses to start (exit %d): %s", code, strings.TrimSpace(stderr))
		}
		os.Remove(filepath.Join(mapDir, "startup.cdb"))
	})

	p := startRelaygate(t, testExecutable(t), nil, "-map", mapPath, "-state", statePath, "-flush", "50ms", "-grace", "1h")
	first := "192.0.2.10"
	sendUDP(t, p.udp, loginLine(first))
	waitFor(t, 5*time.Second, "first login in the map", func() bool { return postmapQuery(t, mapPath, first) })
	waitFor(t, 5*time.Second, "first login in the state file", func() bool {
		g, _ := cdbwriter.LoadState(statePath)
		return len(g) == 1
	})
	oldState, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}

	remount(t, stateDir, true, true)
	// One login at a time: each must reach the map while the state cannot
	// be saved. The latencies show how the state's back-off holds back the
	// map (see docs/HARDENING.md).
	all := []string{first}
	var latencies []time.Duration
	for i := 1; i <= 7; i++ {
		a := fmt.Sprintf("198.51.100.%d", i)
		all = append(all, a)
		sent := time.Now()
		sendUDP(t, p.udp, loginLine(a))
		waitFor(t, 40*time.Second, a+" in the map while the state is unwritable", func() bool { return postmapQuery(t, mapPath, a) })
		latencies = append(latencies, time.Since(sent).Round(time.Millisecond))
	}
	t.Logf("login-to-map latency with an unwritable state file: %v", latencies)
	for i, l := range latencies {
		if l > 2*time.Second {
			msg := fmt.Sprintf("login %d reached the map %v after it was sent: the state file's back-off holds back map publishes", i+1, l)
			if requireFastPublishWithBadState {
				t.Error(msg)
			} else {
				t.Log("TODO(lead): " + msg)
			}
		}
	}
	sort.Strings(all)
	keys, err := readCDBStrict(mapPath)
	if err != nil || !slices.Equal(keys, all) {
		t.Fatalf("map: %v, %v; want %v", keys, err, all)
	}
	checkMapWithPostmap(t, postmap, mapPath, all)
	errs := errorEvents(p)
	if len(errs) == 0 {
		t.Fatal("no error logged for the unwritable state file")
	}
	for _, ev := range errs {
		if msg, _ := ev["error"].(string); !strings.Contains(msg, statePath) || !strings.Contains(msg, "read-only file system") {
			t.Errorf("error line does not name the state file and the cause: %s", mustJSON(ev))
		}
	}
	t.Logf("%d error lines; first: %s", len(errs), mustJSON(errs[0]))
	if now, _ := os.ReadFile(statePath); !bytes.Equal(now, oldState) {
		t.Errorf("the state file changed on a read-only file system")
	}
	requireAlive(t, p)

	// Writable again: without any new login the state catches up.
	remount(t, stateDir, true, false)
	cleared := time.Now()
	waitFor(t, 60*time.Second, "every grant in the state file once it is writable", func() bool {
		g, err := cdbwriter.LoadState(statePath)
		return err == nil && len(g) == len(all)
	})
	t.Logf("state saved %v after it became writable", time.Since(cleared).Round(time.Millisecond))
	requireAlive(t, p)
	failures := len(errorEvents(p))
	if code := p.stop(t, syscall.SIGTERM, 5*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	// Every failed state save was counted; no map publish failed.
	checkStopCounters(t, p, map[string]int64{"state_errors": int64(failures)})
	stopped := eventsWhere(p, func(ev map[string]any) bool { return ev["message"] == "stopped" })
	if n, ok := stopCounter(stopped[0], "publish_errors"); ok && n != 0 {
		t.Errorf("publish_errors = %d, want 0: only the state file was unwritable", n)
	}
}

// ---------------------------------------------------------------------------
// 4. Unprivileged

const nobody = 65534 // nobody:nogroup on Debian

// TestRunsUnprivileged runs relaygate as nobody:nogroup with only its data
// directory writable: it receives on loopback, publishes a map Postfix
// reads, and fails at startup with one clear line when the map's directory
// is not writable.
func TestRunsUnprivileged(t *testing.T) {
	requireRoot(t)
	postmap := lookPostmap(t)

	// t.TempDir and the go build cache are 0700 root: nobody could not even
	// execute the test binary there.
	top, exe := unprivilegedTop(t, "relaygate-unprivileged-")
	data := filepath.Join(top, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	cred := &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}
	mapPath := filepath.Join(data, "pbs.cdb")

	p := startRelaygate(t, exe, cred, "-map", mapPath, "-flush", "50ms")
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "Uid:") || strings.HasPrefix(line, "Gid:") || strings.HasPrefix(line, "Groups:") || strings.HasPrefix(line, "CapEff:") {
			t.Logf("relaygate %s", strings.Join(strings.Fields(line), " "))
		}
		if strings.HasPrefix(line, "Uid:") && strings.Fields(line)[2] != strconv.Itoa(nobody) {
			t.Fatalf("relaygate runs as %s, want uid %d", line, nobody)
		}
		if strings.HasPrefix(line, "CapEff:") && strings.Fields(line)[1] != "0000000000000000" {
			t.Errorf("relaygate has capabilities: %s", line)
		}
	}
	t.Logf("listening on udp %s, tcp %s", p.udp, p.tcp)
	sendUDP(t, p.udp, loginLine("192.0.2.10"))
	sendTCP(t, p.tcp, loginLine("192.0.2.11")+"\n")
	waitFor(t, 5*time.Second, "logins in the map written by nobody", func() bool {
		return postmapQuery(t, mapPath, "192.0.2.10") && postmapQuery(t, mapPath, "192.0.2.11")
	})
	checkMapWithPostmap(t, postmap, mapPath, []string{"192.0.2.10", "192.0.2.11"})
	if code := p.stop(t, syscall.SIGTERM, 5*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	for _, f := range []string{mapPath, filepath.Join(data, "pbs.state")} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != nobody {
			t.Errorf("%s is owned by uid %d, want %d", f, st.Uid, nobody)
		}
		t.Logf("%s %v uid %d", filepath.Base(f), fi.Mode(), st.Uid)
	}

	// A map in a directory nobody cannot write: a clear one-line startup error.
	badMap := filepath.Join(top, "pbs.cdb")
	code, stderr, started := runOnce(t, exe, cred, "-map", badMap)
	if started {
		t.Fatalf("relaygate started with a map in a directory it cannot write")
	}
	// Log lines (JSON) may come first, e.g. the warning that an
	// unprivileged process gets a smaller UDP buffer; the error itself is
	// the one plain line.
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !strings.HasPrefix(l, "{") {
			lines = append(lines, l)
		}
	}
	switch {
	case code == 0:
		t.Errorf("exit code 0, want a failure")
	case len(lines) != 1:
		t.Errorf("startup error has %d lines, want one:\n%s", len(lines), stderr)
	case !strings.Contains(lines[0], badMap):
		t.Errorf("startup error does not name the map %s: %s", badMap, lines[0])
	case !strings.Contains(lines[0], "permission denied"):
		t.Errorf("startup error does not give the cause: %s", lines[0])
	}
	t.Logf("map in a root-owned 0755 directory: exit %d: %s", code, strings.TrimSpace(stderr))
	if _, err := os.Stat(badMap); err == nil {
		t.Errorf("%s was created", badMap)
	}
}

// unprivilegedTop makes a world-readable directory outside t.TempDir and
// the go build cache (both 0700 root) and copies the test binary into it,
// so that nobody can run it; it is removed when the test ends.
func unprivilegedTop(t *testing.T, pattern string) (top, exe string) {
	t.Helper()
	top, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	exe = filepath.Join(top, "relaygate.test")
	copyExecutable(t, exe)
	return top, exe
}

// copyExecutable copies the running test binary to dst, mode 0755.
func copyExecutable(t *testing.T, dst string) {
	t.Helper()
	src, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, bufio.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------
// 5. Two relaygates on one map, and a state file nobody can read

// TestSecondInstanceRefused: a second relaygate on the same map and state
// must not start (issue 11, point 5): it would publish its own table over
// the first one's. It fails at once, naming the first one's PID, and the
// first one's grant stays in the map.
func TestSecondInstanceRefused(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mapPath := filepath.Join(dir, "pbs.cdb")
	first := startProc(t, "-map", mapPath, "-flush", "50ms")
	sendUDP(t, first.udp, loginLine("192.0.2.10"))
	waitFor(t, 5*time.Second, "the first instance's grant in the map", func() bool { return postmapQuery(t, mapPath, "192.0.2.10") })
	for _, args := range [][]string{
		{"-map", mapPath},
		{"-map", filepath.Join(dir, "other.cdb"), "-state", filepath.Join(dir, "pbs.state")},
	} {
		code, stderr, started := runOnce(t, exe, nil, args...)
		if started || code == 0 {
			t.Fatalf("a second relaygate with %v started (exit %d):\n%s", args, code, stderr)
		}
		if want := fmt.Sprintf("relaygate process %d", first.cmd.Process.Pid); !strings.Contains(stderr, want) || !strings.Contains(stderr, "in use") {
			t.Errorf("the refusal does not name the holder (%q):\n%s", want, stderr)
		}
	}
	if !postmapQuery(t, mapPath, "192.0.2.10") {
		t.Fatal("the refused second instance dropped the first one's grant")
	}
	requireAlive(t, first)
	if code := first.stop(t, syscall.SIGTERM, 5*time.Second); code != 0 {
		t.Fatalf("first instance exit %d", code)
	}
	// Once the first has stopped, a new one starts.
	again := startProc(t, "-map", mapPath)
	again.stop(t, syscall.SIGTERM, 5*time.Second)
}

// TestStateUnreadableRefusesToStart: relaygate running unprivileged finds
// a state file it cannot read (root's, 0600). It must refuse to start,
// naming the file and the fix, and leave the map exactly as it was; it used
// to publish an empty map over every grant.
func TestStateUnreadableRefusesToStart(t *testing.T) {
	requireRoot(t)
	top, exe := unprivilegedTop(t, "relaygate-unreadable-")
	data := filepath.Join(top, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	mapPath, statePath := filepath.Join(data, "pbs.cdb"), filepath.Join(data, "pbs.state")
	var grants []cdbwriter.Grant
	for i := range 50 {
		grants = append(grants, cdbwriter.Grant{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), Expires: time.Now().Add(time.Hour)})
	}
	if err := cdbwriter.WriteMap(mapPath, grants); err != nil {
		t.Fatal(err)
	}
	if err := cdbwriter.SaveState(statePath, grants); err != nil { // 0600, root's
		t.Fatal(err)
	}
	if err := os.Chown(data, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(mapPath)
	cred := &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}
	code, stderr, started := runOnce(t, exe, cred, "-map", mapPath)
	if started || code == 0 {
		t.Fatalf("relaygate started with a state file it cannot read (exit %d):\n%s", code, stderr)
	}
	if !strings.Contains(stderr, statePath) || !strings.Contains(stderr, "permission denied") || !strings.Contains(stderr, "fix:") {
		t.Errorf("the error does not name the state file, the cause and the fix:\n%s", stderr)
	}
	if after, _ := os.ReadFile(mapPath); !bytes.Equal(before, after) {
		t.Fatal("the map changed although relaygate refused to start")
	}
	if n := tempLeftovers(t, data); n > 0 {
		t.Errorf("%d temporary files left", n)
	}
}
