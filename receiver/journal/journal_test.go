package journal

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/relaygate/relaygate/internal/metric"
	"github.com/relaygate/relaygate/internal/origin"
	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/receiver/journal/journaltest"
)

func TestMain(m *testing.M) {
	journaltest.Main()
	os.Exit(m.Run())
}

const login = "imap-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1"

// harness runs a Reader over a fake journalctl.
type harness struct {
	t      *testing.T
	fake   *journaltest.Fake
	r      *Reader
	out    chan Entry
	cancel context.CancelFunc
	done   chan struct{}
}

func newHarness(t *testing.T, fake *journaltest.Fake, cursorFile string, mod func(*Config)) *harness {
	t.Helper()
	cfg := Config{
		Programs: []string{"dovecot"}, Journalctl: fake.Path, CursorFile: cursorFile,
		Grace: 30 * time.Minute, HoldFor: 2 * time.Minute,
		Logger:     zerolog.New(zerolog.NewTestWriter(t)),
		minBackoff: time.Millisecond, maxBackoff: 20 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, fake: fake, r: r, out: make(chan Entry, 1024)}
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() { defer close(h.done); h.r.Run(ctx, h.out) }()
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
	}
	h.r.Close()
}

// next returns the next n entries (failing after 10 s: a hang, not a
// timing assertion).
func (h *harness) next(n int) []Entry {
	h.t.Helper()
	var got []Entry
	for len(got) < n {
		select {
		case e := <-h.out:
			got = append(got, e)
		case <-time.After(testutil.EventuallyFloor):
			h.t.Fatalf("got %d entries, want %d; calls: %q", len(got), n, h.fake.Calls())
		}
	}
	return got
}

// quiet checks that nothing more arrives while the fake has time to print.
func (h *harness) quiet() {
	h.t.Helper()
	select {
	case e := <-h.out:
		h.t.Fatalf("unexpected entry %d %q", e.Seq, e.Text)
	case <-time.After(100 * time.Millisecond):
	}
}

func sample(r *Reader, name, label string) float64 {
	var v float64
	r.Samples(func(s metric.Sample) {
		if s.Name == metric.Prefix+name && s.LabelValue == label {
			v = s.Value
		}
	})
	return v
}

func TestReadEntries(t *testing.T) {
	fake := journaltest.Install(t)
	dovecot := journaltest.Login("dovecot", login, 0, "log")
	binary := journaltest.Login("dovecot", "", 0, "log")
	binary.Fields["MESSAGE"] = []byte("imap-login: \xff")
	noMsg := journaltest.Login("dovecot", "", 0, "log")
	delete(noMsg.Fields, "MESSAGE")
	twice := journaltest.Login("dovecot", "", 0, "log")
	twice.Fields["MESSAGE"] = []any{"a", "b"}
	noUID := journaltest.Login("dovecot", login, 0, "log")
	delete(noUID.Fields, "_UID")
	noSyslogPID := journaltest.Login("dovecot", login, 65534, "logger")
	delete(noSyslogPID.Fields, "SYSLOG_PID")
	noSyslogPID.Fields["_PID"] = "99"
	fake.Append(t, dovecot, binary)
	fake.AppendRaw(t, fmt.Sprintf("garbage\n-- No entries --\n{\"MESSAGE\":\"no cursor\",\"SYSLOG_IDENTIFIER\":\"dovecot\",\"_MACHINE_ID\":%q,\"__REALTIME_TIMESTAMP\":\"%d\"}\n",
		journaltest.LocalMachineID(), time.Now().UnixMicro()))
	fake.Append(t, noMsg, twice, noUID, noSyslogPID)
	h := newHarness(t, fake, filepath.Join(t.TempDir(), "c"), nil)
	h.start()
	got := h.next(6)
	h.quiet()
	for i, e := range got {
		if e.Seq != uint64(i+1) || e.Transport != "journal" {
			t.Errorf("entry %d: seq %d transport %q", i, e.Seq, e.Transport)
		}
	}
	e := got[0]
	if e.Host != "mail" || e.Program != "dovecot" || e.PID != "4711" || e.Text != login {
		t.Errorf("entry 1 = %+v", e.Envelope)
	}
	if o := e.Origin.Origin(); e.Origin.State() != origin.Verified || o.UID != 0 || o.Comm != "log" || o.Exe != "/usr/sbin/log" || o.PID != 4711 {
		t.Errorf("origin = %v %v", e.Origin.State(), o)
	}
	if got[1].Text != "imap-login: \xff" {
		t.Errorf("byte-array MESSAGE = %q", got[1].Text)
	}
	if got[2].Program != "" || got[3].Program != "" || got[3].Text != "" {
		t.Errorf("entries without one MESSAGE are handed on empty (for their cursor): %+v %+v", got[2].Envelope, got[3].Envelope)
	}
	if got[4].Origin.State() != origin.Malformed {
		t.Errorf("no _UID: origin %v, want malformed", got[4].Origin.State())
	}
	if got[5].PID != "99" || got[5].Origin.Origin().UID != 65534 {
		t.Errorf("PID from _PID: %q, uid %d", got[5].PID, got[5].Origin.Origin().UID)
	}
	for reason, want := range map[string]float64{reasonMalformed: 2, reasonNoMessage: 1, reasonAmbiguous: 1} {
		if v := sample(h.r, "journal_skipped_total", reason); v != want {
			t.Errorf("skipped{%s} = %v, want %v", reason, v, want)
		}
	}
	if v := sample(h.r, "journal_entries_total", ""); v != 6 {
		t.Errorf("entries = %v", v)
	}
	args := fake.Calls()[0]
	for _, want := range []string{"--follow", "--output=json", "SYSLOG_IDENTIFIER=dovecot", "SYSLOG_IDENTIFIER=DOVECOT", "SYSLOG_IDENTIFIER=Dovecot"} {
		if !slices.Contains(args, want) {
			t.Errorf("journalctl args %q lack %q", args, want)
		}
	}
	// Not --all (see args); this host's entries only.
	if slices.Contains(args, "--all") {
		t.Errorf("journalctl args %q", args)
	}
	if id := journaltest.LocalMachineID(); id != "" && !slices.Contains(args, "_MACHINE_ID="+id) {
		t.Errorf("journalctl args %q lack _MACHINE_ID=%s", args, id)
	}
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--since=@") }) {
		t.Errorf("a fresh start reads since one grace period ago: %q", args)
	}
}

func TestMatches(t *testing.T) {
	got := Matches([]string{"dovecot", "cyrus/imap", "x"})
	want := []string{"SYSLOG_IDENTIFIER=dovecot", "SYSLOG_IDENTIFIER=DOVECOT", "SYSLOG_IDENTIFIER=Dovecot",
		"SYSLOG_IDENTIFIER=cyrus/imap", "SYSLOG_IDENTIFIER=CYRUS/IMAP", "SYSLOG_IDENTIFIER=Cyrus/imap",
		"SYSLOG_IDENTIFIER=x", "SYSLOG_IDENTIFIER=X"}
	if !slices.Equal(got, want) {
		t.Errorf("Matches = %q, want %q", got, want)
	}
}

func TestFiltersByProgram(t *testing.T) {
	fake := journaltest.Install(t)
	fake.Append(t, journaltest.Login("sshd", "Accepted password", 0, "sshd"),
		journaltest.Login("Dovecot", login, 0, "log"), journaltest.Login("dovecot", login, 0, "log"))
	h := newHarness(t, fake, filepath.Join(t.TempDir(), "c"), nil)
	h.start()
	got := h.next(2)
	h.quiet()
	if got[0].Program != "Dovecot" || got[1].Program != "dovecot" {
		t.Errorf("programs %q %q", got[0].Program, got[1].Program)
	}
}

// journalctl exiting (a crash, a corrupt file): it is started again, with
// back-off, where it stopped; nothing is read twice or skipped.
func TestRestartResumesWhereItStopped(t *testing.T) {
	fake := journaltest.Install(t)
	fake.Plan(t, "exit 1", "fail Journal file corrupted", "exit 2", "follow")
	for i := range 5 {
		fake.Append(t, journaltest.Login("dovecot", login+string(rune('a'+i)), 0, "log"))
	}
	h := newHarness(t, fake, filepath.Join(t.TempDir(), "c"), nil)
	h.start()
	got := h.next(5)
	h.quiet()
	for i, e := range got {
		if want := login + string(rune('a'+i)); e.Text != want {
			t.Errorf("entry %d = %q, want %q", i, e.Text, want)
		}
	}
	calls := fake.Calls()
	if len(calls) != 4 {
		t.Fatalf("%d runs, want 4: %q", len(calls), calls)
	}
	if !slices.Contains(calls[1], "--cursor="+journaltest.Cursor(1)) || !slices.Contains(calls[3], "--cursor="+journaltest.Cursor(2)) {
		t.Errorf("restarts do not resume at the last entry read: %q", calls)
	}
	if v := sample(h.r, "journal_restarts_total", ""); v != 3 {
		t.Errorf("restarts = %v, want 3", v)
	}
	// Appended later: followed.
	fake.Append(t, journaltest.Login("dovecot", "later", 0, "log"))
	if e := h.next(1)[0]; e.Text != "later" || e.Seq != 6 {
		t.Errorf("followed entry = %d %q", e.Seq, e.Text)
	}
}

// The cursor file holds the last durable entry; a new reader resumes right
// after it (kill -9: nothing after the durable point was saved).
func TestCursorResume(t *testing.T) {
	fake := journaltest.Install(t)
	cursorFile := filepath.Join(t.TempDir(), "pbs.state.journal-cursor")
	for i := range 4 {
		fake.Append(t, journaltest.Login("dovecot", login+string(rune('a'+i)), 0, "log"))
	}
	h := newHarness(t, fake, cursorFile, nil)
	h.start()
	h.next(4)
	h.r.Durable(2)
	h.stop()
	b, err := os.ReadFile(cursorFile)
	if err != nil || strings.TrimSpace(string(b)) != journaltest.Cursor(2) {
		t.Fatalf("cursor file = %q, %v; want %q", b, err, journaltest.Cursor(2))
	}
	h2 := newHarness(t, fake, cursorFile, nil)
	if !strings.Contains(h2.r.Resuming(), "saved cursor") {
		t.Errorf("Resuming = %q", h2.r.Resuming())
	}
	h2.start()
	got := h2.next(2)
	h2.quiet()
	if got[0].Text != login+"c" || got[1].Text != login+"d" || got[0].Seq != 1 {
		t.Errorf("resumed with %q (seq %d), %q; want entries 3 and 4", got[0].Text, got[0].Seq, got[1].Text)
	}
	if c := fake.Calls(); !slices.Contains(c[len(c)-1], "--cursor="+journaltest.Cursor(2)) {
		t.Errorf("args %q", c[len(c)-1])
	}
}

// A saved cursor whose entry was vacuumed: journalctl seeks to the nearest
// entry, which must not be skipped (journalctl 252's --after-cursor would).
func TestCursorVacuumed(t *testing.T) {
	fake := journaltest.Install(t)
	cursorFile := filepath.Join(t.TempDir(), "c")
	if err := writeCursorFile(cursorFile, journaltest.Cursor(2)); err != nil {
		t.Fatal(err)
	}
	fake.Append(t, journaltest.Entry{Cursor: journaltest.Cursor(1), Fields: journaltest.Login("dovecot", "one", 0, "log").Fields},
		journaltest.Entry{Cursor: journaltest.Cursor(3), Fields: journaltest.Login("dovecot", "three", 0, "log").Fields})
	h := newHarness(t, fake, cursorFile, nil)
	h.start()
	if e := h.next(1)[0]; e.Text != "three" {
		t.Errorf("first entry after a vacuumed cursor = %q, want three", e.Text)
	}
	h.quiet()
}

// A cursor journalctl refuses: said in the log, and reading starts one
// grace period ago instead.
func TestCursorRefused(t *testing.T) {
	fake := journaltest.Install(t)
	cursorFile := filepath.Join(t.TempDir(), "c")
	if err := os.WriteFile(cursorFile, []byte("not-a-journald-cursor\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fake.Append(t, journaltest.Entry{Realtime: time.Now().Add(-time.Hour), Fields: journaltest.Login("dovecot", "old", 0, "log").Fields},
		journaltest.Login("dovecot", "recent", 0, "log"))
	h := newHarness(t, fake, cursorFile, nil)
	h.start()
	if e := h.next(1)[0]; e.Text != "recent" {
		t.Errorf("after a refused cursor read %q, want recent", e.Text)
	}
	h.quiet()
	calls := fake.Calls()
	if len(calls) != 2 || !slices.ContainsFunc(calls[1], func(a string) bool { return strings.HasPrefix(a, "--since=@") }) {
		t.Errorf("calls %q", calls)
	}
}

// Entries older than the grace period when read are Stale; every entry's
// time is its journal time, clamped to [now-grace, now].
func TestStaleAndClamp(t *testing.T) {
	fake := journaltest.Install(t)
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	fake.Append(t,
		journaltest.Entry{Cursor: journaltest.Cursor(1), Realtime: now.Add(-time.Hour), Fields: journaltest.Login("dovecot", "old", 0, "log").Fields},
		journaltest.Entry{Cursor: journaltest.Cursor(2), Realtime: now.Add(-10 * time.Minute), Fields: journaltest.Login("dovecot", "recent", 0, "log").Fields},
		journaltest.Entry{Cursor: journaltest.Cursor(3), Realtime: now.Add(time.Hour), Fields: journaltest.Login("dovecot", "future", 0, "log").Fields})
	cursorFile := filepath.Join(t.TempDir(), "c")
	if err := writeCursorFile(cursorFile, "s=fake;i=0"); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, fake, cursorFile, func(c *Config) { c.Now = func() time.Time { return now } })
	h.start()
	got := h.next(3)
	if !got[0].Stale || !got[0].Received.Equal(now.Add(-30*time.Minute)) {
		t.Errorf("old: stale %v at %v", got[0].Stale, got[0].Received)
	}
	if got[1].Stale || !got[1].Received.Equal(now.Add(-10*time.Minute)) {
		t.Errorf("recent: stale %v at %v", got[1].Stale, got[1].Received)
	}
	if got[2].Stale || !got[2].Received.Equal(now) {
		t.Errorf("future: stale %v at %v", got[2].Stale, got[2].Received)
	}
}

// A two-line daemon's held address line keeps the saved cursor before it
// until the correlator would have forgotten it.
func TestHoldKeepsCursorBack(t *testing.T) {
	fake := journaltest.Install(t)
	cursorFile := filepath.Join(t.TempDir(), "c")
	base := time.Now().Add(-10 * time.Minute)
	for i := range 3 {
		fake.Append(t, journaltest.Entry{Realtime: base.Add(time.Duration(i) * time.Second), Fields: journaltest.Login("dovecot", "x", 0, "log").Fields})
	}
	h := newHarness(t, fake, cursorFile, nil)
	h.start()
	h.next(3)
	h.r.Hold(2, base.Add(time.Second))
	h.r.Durable(3)
	h.r.saveDurable()
	if b, _ := os.ReadFile(cursorFile); strings.TrimSpace(string(b)) != journaltest.Cursor(1) {
		t.Errorf("cursor with entry 2 held = %q, want %q", b, journaltest.Cursor(1))
	}
	fake.Append(t, journaltest.Entry{Realtime: base.Add(3 * time.Minute), Fields: journaltest.Login("dovecot", "x", 0, "log").Fields})
	h.next(1)
	h.r.Durable(4)
	h.stop()
	if b, _ := os.ReadFile(cursorFile); strings.TrimSpace(string(b)) != journaltest.Cursor(4) {
		t.Errorf("cursor after the hold expired = %q, want %q", b, journaltest.Cursor(4))
	}
}

func TestPendingBounded(t *testing.T) {
	r := &Reader{}
	for i := 1; i <= 3*maxPending; i++ {
		r.mu.Lock()
		r.addPending(uint64(i), journaltest.Cursor(i))
		r.mu.Unlock()
	}
	if n := len(r.pending) - r.pendingHead; n > maxPending {
		t.Fatalf("%d pending cursors, bound %d", n, maxPending)
	}
	r.durable.Store(uint64(3 * maxPending))
	r.mu.Lock()
	c := r.durableCursor()
	r.mu.Unlock()
	if c != journaltest.Cursor(3*maxPending) {
		t.Errorf("newest durable cursor = %q", c)
	}
	// Thinning never makes a cursor newer than what is durable.
	r2 := &Reader{}
	for i := 1; i <= maxPending+10; i++ {
		r2.addPending(uint64(i), journaltest.Cursor(i))
	}
	r2.durable.Store(5)
	if c := r2.durableCursor(); c != "" && cursorNum(c) > 5 {
		t.Errorf("cursor %q beyond durable 5", c)
	}
}

func cursorNum(c string) int {
	var n int
	for _, p := range strings.Split(c, ";") {
		if v, ok := strings.CutPrefix(p, "i="); ok {
			for _, d := range v {
				n = n*16 + strings.IndexRune("0123456789abcdef", d)
			}
		}
	}
	return n
}

func TestLongLineSkipped(t *testing.T) {
	fake := journaltest.Install(t)
	// A MESSAGE of 4096 bytes or more is printed as null: only a field a
	// client repeated makes a line this long.
	long := journaltest.Login("dovecot", "", 0, "log")
	var repeated []any
	for range 150 {
		repeated = append(repeated, strings.Repeat("x", 4000))
	}
	long.Fields["MESSAGE"] = repeated
	fake.Append(t, long, journaltest.Login("dovecot", "short", 0, "log"))
	h := newHarness(t, fake, filepath.Join(t.TempDir(), "c"), func(c *Config) { c.maxLine = 512 << 10 })
	h.start()
	if e := h.next(1)[0]; e.Text != "short" {
		t.Errorf("after a long line: %q", e.Text)
	}
	if v := sample(h.r, "journal_skipped_total", reasonTooLong); v != 1 {
		t.Errorf("too_long = %v", v)
	}
}

func TestJournalctlMissing(t *testing.T) {
	_, err := New(Config{Journalctl: "/nonexistent/journalctl", CursorFile: filepath.Join(t.TempDir(), "c")})
	if err == nil || !strings.Contains(err.Error(), "systemd") {
		t.Fatalf("err = %v", err)
	}
}

// A reload that changes the parsers restarts journalctl with the new
// matches, where it was.
func TestSetPrograms(t *testing.T) {
	fake := journaltest.Install(t)
	fake.Append(t, journaltest.Login("dovecot", "d1", 0, "log"), journaltest.Login("imapd", "c1", 0, "imapd"))
	h := newHarness(t, fake, filepath.Join(t.TempDir(), "c"), nil)
	h.start()
	if e := h.next(1)[0]; e.Text != "d1" {
		t.Fatal(e.Text)
	}
	h.r.SetPrograms([]string{"dovecot", "imapd"})
	fake.Append(t, journaltest.Login("imapd", "c2", 0, "imapd"))
	got := h.next(1)
	if got[0].Text != "c2" {
		// The restart resumes after d1: c1 comes first, then c2.
		got = append(got, h.next(1)...)
		if got[0].Text != "c1" || got[1].Text != "c2" {
			t.Errorf("after SetPrograms: %q %q", got[0].Text, got[1].Text)
		}
	}
	if v := sample(h.r, "journal_restarts_total", ""); v != 0 {
		t.Errorf("a reprogramming is not a restart: %v", v)
	}
}

func TestDurableConcurrent(t *testing.T) {
	fake := journaltest.Install(t)
	fake.Append(t, journaltest.Login("dovecot", "x", 0, "log"))
	h := newHarness(t, fake, filepath.Join(t.TempDir(), "c"), nil)
	h.start()
	h.next(1)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); h.r.Durable(uint64(i % 2)) }()
	}
	wg.Wait()
	h.stop()
	if b, _ := os.ReadFile(h.r.CursorFile()); strings.TrimSpace(string(b)) != journaltest.Cursor(1) {
		t.Errorf("cursor = %q", b)
	}
}

// A MESSAGE of 4096 bytes or more is printed as null without --all, text
// or not, and skipped as no_message; the logins after it come through,
// with their UTF-8 intact (journalctl 252 does the same: docs/JOURNAL.md).
func TestLargeMessageIsNull(t *testing.T) {
	fake := journaltest.Install(t)
	big := journaltest.Login("dovecot", strings.Repeat("é", 3000), 65534, "python3")
	binary := journaltest.Login("dovecot", "", 65534, "python3")
	binary.Fields["MESSAGE"] = append([]byte("x"), make([]byte, 20<<10)...)
	utf8Login := strings.Replace(login, "alice", "ålice", 1) + " héllo"
	fake.Append(t, big, binary, journaltest.Login("dovecot", utf8Login, 0, "log"))
	h := newHarness(t, fake, filepath.Join(t.TempDir(), "c"), nil)
	h.start()
	got := h.next(3)
	if got[0].Text != "" || got[1].Text != "" || got[2].Text != utf8Login {
		t.Errorf("texts %q %q %q", got[0].Text, got[1].Text, got[2].Text)
	}
	if v := sample(h.r, "journal_skipped_total", reasonNoMessage); v != 2 {
		t.Errorf("no_message = %v, want 2", v)
	}
	if v := sample(h.r, "journal_restarts_total", ""); v != 0 {
		t.Errorf("restarts = %v", v)
	}
}

// An entry journalctl cannot print (it exits there on every run, as
// journalctl 252 with --all did on a 20 MiB binary MESSAGE): after
// stuckAfter empty runs it is skipped, counted and reported by Health; the
// logins after it are read, and its cursor is never saved.
func TestStuckEntrySkipped(t *testing.T) {
	fake := journaltest.Install(t)
	poison := journaltest.Login("dovecot", "", 65534, "python3")
	poison.Fields[journaltest.FailField] = "Failed to allocate JSON data: Cannot allocate memory"
	cursors := fake.Append(t, journaltest.Login("dovecot", "one", 0, "log"), poison, journaltest.Login("dovecot", "two", 0, "log"))
	cursorFile := filepath.Join(t.TempDir(), "c")
	h := newHarness(t, fake, cursorFile, nil)
	h.start()
	got := h.next(2)
	h.quiet()
	if got[0].Text != "one" || got[1].Text != "two" {
		t.Fatalf("read %q %q, want one, two", got[0].Text, got[1].Text)
	}
	if v := sample(h.r, "journal_skipped_total", reasonStuck); v != 1 {
		t.Errorf("stuck = %v, want 1", v)
	}
	if hl := h.r.Health(); !strings.Contains(hl, cursors[1]) || !strings.Contains(hl, "skipped") {
		t.Errorf("Health = %q, want the skipped entry", hl)
	}
	calls := fake.Calls()
	// Run 1 prints "one" and fails at the poison; runs 2-4 (from "one")
	// fail at once; the probe; the run after the poison.
	if len(calls) != 6 {
		t.Fatalf("%d runs, want 6: %q", len(calls), calls)
	}
	probe := calls[4]
	for _, want := range []string{"--output-fields=_UID", "--lines=2", "--cursor=" + cursors[0]} {
		if !slices.Contains(probe, want) || slices.Contains(probe, "--follow") {
			t.Errorf("probe %q: want %q and no --follow", probe, want)
		}
	}
	if !slices.Contains(calls[5], "--after-cursor="+cursors[1]) || !slices.Contains(calls[5], "--follow") {
		t.Errorf("run after the skip: %q", calls[5])
	}
	h.r.Durable(2)
	h.stop()
	if b, _ := os.ReadFile(cursorFile); strings.TrimSpace(string(b)) != cursors[2] {
		t.Errorf("saved cursor %q, want %q", b, cursors[2])
	}
	// Health clears stuckUnhealthyFor after the skip.
	later := time.Now().Add(stuckUnhealthyFor + time.Minute)
	h.r.cfg.Now = func() time.Time { return later }
	if hl := h.r.Health(); hl != "" {
		t.Errorf("Health %v after the skip = %q", stuckUnhealthyFor+time.Minute, hl)
	}
}

// Stuck at the first entry (no cursor yet), then relaygate restarts before
// any later entry: the saved cursor is before the poison, which is skipped
// again, and nothing after it is lost.
func TestStuckAtStartAndAfterRestart(t *testing.T) {
	fake := journaltest.Install(t)
	poison := journaltest.Login("dovecot", "", 65534, "python3")
	poison.Fields[journaltest.FailField] = "Bad message"
	cursors := fake.Append(t, poison)
	cursorFile := filepath.Join(t.TempDir(), "c")
	h := newHarness(t, fake, cursorFile, nil)
	h.start()
	testutil.Eventually(t, 10*time.Second, "the poison skipped", func() bool { return sample(h.r, "journal_skipped_total", reasonStuck) == 1 })
	calls := fake.Calls()
	probe := calls[3]
	if !slices.Contains(probe, "--lines=1") || !slices.ContainsFunc(probe, func(a string) bool { return strings.HasPrefix(a, "--since=@") }) {
		t.Errorf("probe without a position: %q", probe)
	}
	fake.Append(t, journaltest.Login("dovecot", "one", 0, "log"))
	if e := h.next(1)[0]; e.Text != "one" {
		t.Fatalf("after the skip: %q", e.Text)
	}
	h.r.Durable(1)
	h.stop()
	if b, _ := os.ReadFile(cursorFile); strings.TrimSpace(string(b)) == cursors[0] {
		t.Fatalf("the skipped entry's cursor was saved")
	}

	// A second poison after "one"; relaygate stops before anything else.
	fake.Append(t, poison)
	h2 := newHarness(t, fake, cursorFile, nil)
	h2.start()
	testutil.Eventually(t, 10*time.Second, "the second poison skipped", func() bool { return sample(h2.r, "journal_skipped_total", reasonStuck) == 1 })
	h2.stop()
	h3 := newHarness(t, fake, cursorFile, nil)
	h3.start()
	testutil.Eventually(t, 10*time.Second, "skipped again after a restart", func() bool { return sample(h3.r, "journal_skipped_total", reasonStuck) == 1 })
	fake.Append(t, journaltest.Login("dovecot", "two", 0, "log"))
	if e := h3.next(1)[0]; e.Text != "two" {
		t.Fatalf("after the second skip: %q", e.Text)
	}
	h3.quiet()
}

// journalctl that cannot read the journal at all: the probe fails too, so
// nothing is skipped; Health says the reader is stuck until an entry comes
// through again.
func TestStuckWithoutEntryIsUnhealthy(t *testing.T) {
	fake := journaltest.Install(t)
	const failures = 24 // runs and probes; then journalctl can read again
	plan := slices.Repeat([]string{"fail No journal files were opened due to insufficient permissions."}, failures)
	fake.Plan(t, append(plan, "follow")...)
	fake.Append(t, journaltest.Login("dovecot", "one", 0, "log"))
	h := newHarness(t, fake, filepath.Join(t.TempDir(), "c"), func(c *Config) { c.minBackoff, c.maxBackoff = 20*time.Millisecond, 20*time.Millisecond })
	h.start()
	testutil.Eventually(t, 10*time.Second, "Health reports it", func() bool {
		return strings.Contains(h.r.Health(), "insufficient permissions")
	})
	if e := h.next(1)[0]; e.Text != "one" {
		t.Fatalf("read %q", e.Text)
	}
	if v := sample(h.r, "journal_skipped_total", reasonStuck); v != 0 {
		t.Errorf("stuck = %v: nothing may be skipped when the probe fails too", v)
	}
	probes := 0
	for _, c := range fake.Calls() {
		if !slices.Contains(c, "--follow") {
			probes++
		}
	}
	if probes < 3 {
		t.Errorf("%d probes, want one after each run from the third", probes)
	}
	testutil.Eventually(t, 5*time.Second, "healthy again", func() bool { return h.r.Health() == "" })
}

// Only this host's entries are read (with -journal-dir too): a
// container's journal kept under its own machine id (its root is not this
// host's root) is not.
func TestReadsOnlyThisMachine(t *testing.T) {
	const local, container = "3d1219c7c4c5404aaa1f6d2a48adfda4", "0123456789abcdef0123456789abcdef"
	fake := journaltest.Install(t)
	mine := journaltest.Login("dovecot", "mine", 0, "log")
	mine.Fields["_MACHINE_ID"] = local
	theirs := journaltest.Login("dovecot", "theirs", 0, "log")
	theirs.Fields["_MACHINE_ID"] = container
	fake.Append(t, theirs, mine)
	dir := t.TempDir()
	idFile := filepath.Join(dir, "machine-id")
	if err := os.WriteFile(idFile, []byte(local+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, journalDir := range []string{"", dir} {
		h := newHarness(t, fake, filepath.Join(t.TempDir(), "c"), func(c *Config) { c.Directory, c.machineIDFile = journalDir, idFile })
		h.start()
		if e := h.next(1)[0]; e.Text != "mine" {
			t.Errorf("-journal-dir %q: read %q", journalDir, e.Text)
		}
		h.quiet()
		h.stop()
		calls := fake.Calls()
		if args := calls[len(calls)-1]; !slices.Contains(args, "_MACHINE_ID="+local) ||
			(journalDir != "") != slices.Contains(args, "--directory="+dir) {
			t.Errorf("-journal-dir %q: args %q", journalDir, args)
		}
	}
	// Without a machine id (a container image has none), every entry is
	// read, and the log says so.
	h := newHarness(t, fake, filepath.Join(t.TempDir(), "c"), func(c *Config) { c.machineIDFile = filepath.Join(dir, "none") })
	h.start()
	if got := h.next(2); got[0].Text != "theirs" || got[1].Text != "mine" {
		t.Errorf("without a machine id: %q %q", got[0].Text, got[1].Text)
	}
	h.stop()
	for _, bad := range []string{"", "not-an-id", strings.ToUpper(local)} {
		if err := os.WriteFile(idFile, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := readMachineID(idFile); err == nil {
			t.Errorf("machine-id %q read", bad)
		}
	}
	if _, err := New(Config{Journalctl: fake.Path, MachineID: "x", CursorFile: filepath.Join(dir, "c2")}); err == nil {
		t.Error("a bad MachineID: no error")
	}
}
