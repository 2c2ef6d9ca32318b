// Package journaltest is a fake journalctl for tests of the journal source:
// a test binary that calls Main from TestMain becomes a journalctl when
// run through the script Install writes. The fake journal is a file of
// JSON entries, one a line (Append); the fake honours --cursor,
// --after-cursor, --since=@SECONDS, --lines=N, --output-fields=…, --all
// (without it a field of 4096 bytes or more is printed as null),
// SYSLOG_IDENTIFIER=… matches (ORed), a _MACHINE_ID=… match and --follow
// (it polls the file for appended entries), and follows a plan that tells
// each run to behave: print, exit early, fail, refuse cursors. An entry
// with the field FailField makes every run that would print its MESSAGE
// fail there, as journalctl does on an entry it cannot format.
package journaltest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const envDir = "RELAYGATE_FAKE_JOURNALCTL_DIR"

// FailField, in an entry, makes the fake exit with its value on stderr
// where it would print the entry with its MESSAGE (no --output-fields, or
// one naming MESSAGE): journalctl 252 with --all on a 20 MiB binary
// MESSAGE says "Failed to allocate JSON data: Cannot allocate memory".
const FailField = "FAKE_JOURNALCTL_FAIL"

// Main runs the fake journalctl and exits, if this process was started as
// one (through Install's script); otherwise it returns at once. Call it
// first in TestMain.
func Main() {
	dir := os.Getenv(envDir)
	if dir == "" {
		return
	}
	os.Exit(fake(dir, os.Args[1:]))
}

// Fake is an installed fake journalctl.
type Fake struct {
	Dir  string // the fake's files: journal.jsonl, plan, calls
	Path string // the script to run as journalctl
	mu   sync.Mutex
	next int
}

// Install writes a journalctl script into a new temporary directory that
// runs this test binary as the fake.
func Install(t testing.TB) *Fake {
	t.Helper()
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f := &Fake{Dir: dir, Path: filepath.Join(dir, "journalctl")}
	script := fmt.Sprintf("#!/bin/sh\n%s=%q exec %q \"$@\"\n", envDir, dir, exe)
	if err := os.WriteFile(f.Path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "journal.jsonl"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// Entry is one fake journal entry. Cursor and Realtime are filled by
// Append when zero; Fields holds the rest (a string, a []byte written as a
// byte array, or a []any for a repeated field).
type Entry struct {
	Cursor   string
	Realtime time.Time
	Fields   map[string]any
}

// Login is an entry as journald stores a syslog line of program, written
// by uid with _COMM comm, on this host (its _MACHINE_ID is
// LocalMachineID, if there is one).
func Login(program, text string, uid int, comm string) Entry {
	e := Entry{Fields: map[string]any{
		"MESSAGE": text, "SYSLOG_IDENTIFIER": program, "SYSLOG_PID": "4711",
		"_PID": "4711", "_UID": strconv.Itoa(uid), "_GID": strconv.Itoa(uid), "_COMM": comm,
		"_EXE": "/usr/sbin/" + comm, "_HOSTNAME": "mail", "_TRANSPORT": "syslog",
	}}
	if id := LocalMachineID(); id != "" {
		e.Fields["_MACHINE_ID"] = id
	}
	return e
}

// LocalMachineID is this host's /etc/machine-id, which the reader matches
// entries on; "" if it has none.
func LocalMachineID() string {
	b, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Cursor is the cursor Append gives the entry numbered i (from 1).
func Cursor(i int) string { return fmt.Sprintf("s=fake;i=%x;b=boot;m=%x;t=%x;x=%x", i, i, i, i) }

// Append adds entries to the fake journal; it returns their cursors.
func (f *Fake) Append(t testing.TB, entries ...Entry) []string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	var cursors []string
	for _, e := range entries {
		f.next++
		m := map[string]any{}
		for k, v := range e.Fields {
			m[k] = jsonValue(v)
		}
		if e.Cursor == "" {
			e.Cursor = Cursor(f.next)
		}
		if e.Realtime.IsZero() {
			e.Realtime = time.Now()
		}
		m["__CURSOR"] = e.Cursor
		m["__REALTIME_TIMESTAMP"] = strconv.FormatInt(e.Realtime.UnixMicro(), 10)
		line, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
		cursors = append(cursors, e.Cursor)
	}
	f.AppendRaw(t, b.String())
	return cursors
}

// AppendRaw adds text to the fake journal as it is (garbage lines too).
func (f *Fake) AppendRaw(t testing.TB, text string) {
	t.Helper()
	jf, err := os.OpenFile(filepath.Join(f.Dir, "journal.jsonl"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer jf.Close()
	if _, err := jf.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

func jsonValue(v any) any {
	switch v := v.(type) {
	case []byte:
		out := make([]int, len(v))
		for i, c := range v {
			out[i] = int(c)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = jsonValue(x)
		}
		return out
	}
	return v
}

// Plan sets how the fake's runs behave, one step per run in order (the
// last step repeats): "follow" (print what matches, then follow the file),
// "exit N" (print at most N entries, then exit 1), "fail TEXT" (print TEXT
// on stderr and exit 1 at once), "refuse-cursor" (with --cursor or
// --after-cursor, fail as journalctl does on a cursor it cannot seek to;
// otherwise follow).
func (f *Fake) Plan(t testing.TB, steps ...string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.Dir, "plan"), []byte(strings.Join(steps, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Calls returns the argument lists of every run so far.
func (f *Fake) Calls() [][]string {
	b, _ := os.ReadFile(filepath.Join(f.Dir, "calls"))
	var out [][]string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			out = append(out, strings.Split(l, "\x1f"))
		}
	}
	return out
}
