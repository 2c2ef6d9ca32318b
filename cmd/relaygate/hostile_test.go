package main

// TestHostileCorpus and what it needs: process-level hardening against
// hostile input. The other hardening scenarios (kill -9, write faults,
// running unprivileged, a second instance) have files of their own;
// docs/HARDENING.md has the findings and figures.
//
//	go test -race -count=1 -run 'Hostile|Kill9|DiskFull|ReadOnly|StateUnwritable|Unprivileged|Instance|Unreadable' -v ./cmd/relaygate/
//
// The mount and unprivileged tests need root (and CAP_SYS_ADMIN for mount);
// without it they skip, or fail under CI=true.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/daemon"
	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/internal/testutil/sendtest"
	"github.com/relaygate/relaygate/parsers"
	"github.com/relaygate/relaygate/receiver"
	"github.com/relaygate/relaygate/receiver/syslogmsg"
)

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

// pipelineTally is what the daemon's pipeline made of a batch of messages.
type pipelineTally struct {
	malformed, empty, unmatched, refused, held, logins int64
	grants                                             []string
}

// tallyOffline runs messages through the envelope parser and the daemon's
// pipeline step (every built-in parser and one two-line correlator), in
// order, and reports what each would do. It names every message that
// would grant.
func tallyOffline(t *testing.T, msgs []hostileMsg, split bool) pipelineTally {
	t.Helper()
	set, err := daemon.BuildParsers(daemon.ParserConfig{Daemons: "all"})
	if err != nil {
		t.Fatal(err)
	}
	pipe := parsers.NewPipeline(set, daemon.NewCorrelator())
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
			env, err := syslogmsg.ParseEnvelope(raw)
			if err != nil {
				if len(bytes.TrimRightFunc(raw, func(r rune) bool { return r < 0x20 })) == 0 {
					tl.empty++
				} else {
					tl.malformed++
				}
				continue
			}
			res := pipe.Step(parsers.Message{Host: env.Host, Program: env.Program, PID: env.PID, Text: env.Text}, now)
			switch {
			case res.Outcome == parsers.Refused:
				tl.refused++
			case res.Outcome == parsers.Unmatched:
				tl.unmatched++
			case res.Outcome == parsers.Accepted && res.Event.Kind == parsers.Login:
				tl.logins++
				tl.grants = append(tl.grants, fmt.Sprintf("%s grants %s", m.name, res.Event.Addr))
			default:
				tl.held++ // connect, auth, fail or logout: no pipeline counter
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
	deadline := time.Now().Add(testutil.EventuallyFloor)
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
		whole.malformed, whole.empty, whole.unmatched, whole.refused, whole.held)

	dir := t.TempDir()
	mapPath := filepath.Join(dir, "pbs.cdb")
	p := startProcAs(t, testExecutable(t), nil, "-map", mapPath, "-flush", "20ms", "-mynetworks", "none")
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
	testutil.Eventually(t, 5*time.Second, "UDP barrier login in the map", func() bool { return sendtest.InMap(t, mapPath, barriers[0]) })
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
	testutil.Eventually(t, 5*time.Second, "newline-framed TCP barrier login in the map", func() bool { return sendtest.InMap(t, mapPath, barriers[1]) })
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
	oc.WriteString(sendtest.Octet(loginLine(barriers[2])))
	barrierLogins++
	sendStream(t, p.tcp, oc.Bytes(), false)
	testutil.Eventually(t, 5*time.Second, "octet-counted TCP barrier login in the map", func() bool { return sendtest.InMap(t, mapPath, barriers[2]) })
	requireAlive(t, p)

	t.Logf("inputs tried: %d corpus messages; %d UDP datagrams (%d too big for UDP), %d newline-framed on one TCP connection + %d on their own, %d octet-counted frames; plus %d barrier logins",
		len(corpus), udpSent, udpSkipped, len(corpus)-len(nlIsolated), len(nlIsolated), ocFrames, barrierLogins)

	// Nothing but the barriers is granted, by the Go reader and by postmap.
	keys, err := mapKeys(mapPath)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, barriers) {
		t.Errorf("map holds %v, want exactly the barrier logins %v", keys, barriers)
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
	if keys, err := mapKeys(mapPath); err != nil || !slices.Equal(keys, barriers) {
		t.Errorf("map after shutdown: %v, %v; want exactly %v", keys, err, barriers)
	}
	checkMapWithPostmap(t, postmap, mapPath, barriers)

	// Counting. relaygate must have counted every hostile input.
	line := stopped(t, p)
	udpTally := tallyOffline(t, udpForTally, false)
	ocTally := tallyOffline(t, ocForTally, false)
	type want struct {
		key   string
		min   int64
		exact bool
	}
	wants := []want{
		// Every hostile message is a login in no transport: the only
		// logins are the barriers.
		{"logins", int64(barrierLogins), true},
		{"messages_dropped_too_long", int64(2 * ocTooLong), false},                        // newline and octet passes
		{"messages_dropped_malformed", udpTally.malformed + ocTally.malformed + 1, false}, // +1: the 10-digit length field
		{"messages_unmatched", udpTally.unmatched + ocTally.unmatched, false},
		{"logins_refused", udpTally.refused + ocTally.refused, false},
		{"messages_received_tcp", int64(ocFrames - ocTooLong + 1), false},
	}
	if udpStatsOK && udpDrops == 0 {
		wants = append(wants, want{"messages_received_udp", int64(udpSent + 1), true})
	} else {
		t.Logf("UDP drops %d (stats readable: %v): not checking the exact UDP count", udpDrops, udpStatsOK)
	}
	for _, w := range wants {
		got, ok := stopCounter(line, w.key)
		switch {
		case !ok:
			t.Errorf("the \"stopped\" line has no counter %s: %s", w.key, mustJSON(line))
		case w.exact && got != w.min:
			t.Errorf("counter %s = %d, want %d", w.key, got, w.min)
		case !w.exact && got < w.min:
			t.Errorf("counter %s = %d, want at least %d", w.key, got, w.min)
		default:
			t.Logf("counter %s = %d (want %s%d)", w.key, got, map[bool]string{true: "", false: "≥ "}[w.exact], w.min)
		}
	}
}
