// Package journaltest is a fake journalctl for tests of the journal source:
// a test binary that calls Main from TestMain becomes a journalctl when
// run through the script Install writes. The fake journal is a file of
// JSON entries, one a line (Append); the fake honours --cursor,
// --after-cursor, --since=@SECONDS, SYSLOG_IDENTIFIER=… matches (ORed) and
// --follow (it polls the file for appended entries), and follows a plan
// that tells each run to behave: print, exit early, fail, refuse cursors.
package journaltest

import (
	"bufio"
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
// by uid with _COMM comm.
func Login(program, text string, uid int, comm string) Entry {
	return Entry{Fields: map[string]any{
		"MESSAGE": text, "SYSLOG_IDENTIFIER": program, "SYSLOG_PID": "4711",
		"_PID": "4711", "_UID": strconv.Itoa(uid), "_GID": strconv.Itoa(uid), "_COMM": comm,
		"_EXE": "/usr/sbin/" + comm, "_HOSTNAME": "mail", "_TRANSPORT": "syslog",
	}}
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

// fake is the fake journalctl's main.
func fake(dir string, args []string) int {
	calls, err := os.OpenFile(filepath.Join(dir, "calls"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintln(calls, strings.Join(args, "\x1f"))
	n := 0
	if b, err := os.ReadFile(filepath.Join(dir, "calls")); err == nil {
		n = strings.Count(string(b), "\n")
	}
	calls.Close()
	step := "follow"
	if b, err := os.ReadFile(filepath.Join(dir, "plan")); err == nil {
		steps := strings.Split(strings.TrimSpace(string(b)), "\n")
		step = steps[min(n, len(steps))-1]
	}
	var (
		cursor, after string
		since         int64 = -1
		follow        bool
		matches       = map[string]bool{}
	)
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "--cursor="):
			cursor = strings.TrimPrefix(a, "--cursor=")
		case strings.HasPrefix(a, "--after-cursor="):
			after = strings.TrimPrefix(a, "--after-cursor=")
		case strings.HasPrefix(a, "--since=@"):
			since, _ = strconv.ParseInt(strings.TrimPrefix(a, "--since=@"), 10, 64)
		case a == "--follow":
			follow = true
		case strings.HasPrefix(a, "SYSLOG_IDENTIFIER="):
			matches[strings.TrimPrefix(a, "SYSLOG_IDENTIFIER=")] = true
		}
	}
	verb, arg, _ := strings.Cut(step, " ")
	limit := -1
	switch verb {
	case "fail":
		fmt.Fprintln(os.Stderr, arg)
		return 1
	case "refuse-cursor":
		if cursor != "" || after != "" {
			fmt.Fprintln(os.Stderr, "Failed to seek to cursor: Invalid argument")
			return 1
		}
	case "exit":
		limit, _ = strconv.Atoi(arg)
	}
	if (cursor != "" || after != "") && !strings.HasPrefix(cursor+after, "s=") {
		fmt.Fprintln(os.Stderr, "Failed to seek to cursor: Invalid argument")
		return 1
	}
	jf, err := os.Open(filepath.Join(dir, "journal.jsonl"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	// Where to start: the first entry at or after the cursor (by its
	// number, as journald seeks to the nearest entry when the cursor's own
	// is gone), skipping the cursor's own entry for --after-cursor.
	seek := cursor + after
	started := seek == ""
	seekNum := cursorNum(seek)
	printed := 0
	rd := bufio.NewReader(jf)
	var partial string
	for {
		l, err := rd.ReadString('\n')
		if err != nil {
			partial += l
			if !follow {
				break
			}
			_ = out.Flush()
			time.Sleep(5 * time.Millisecond)
			continue
		}
		l, partial = partial+l, ""
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			if started {
				out.WriteString(l) // garbage goes out as it is
			}
			continue
		}
		c, _ := m["__CURSOR"].(string)
		if !started {
			if cursorNum(c) < seekNum {
				continue
			}
			started = true
			if after != "" && c == after {
				continue
			}
		}
		if since >= 0 {
			rt, _ := m["__REALTIME_TIMESTAMP"].(string)
			us, _ := strconv.ParseInt(rt, 10, 64)
			if us/1e6 < since {
				continue
			}
		}
		if len(matches) > 0 {
			id, _ := m["SYSLOG_IDENTIFIER"].(string)
			if !matches[id] {
				continue
			}
		}
		if limit >= 0 && printed >= limit {
			_ = out.Flush()
			return 1
		}
		out.WriteString(l)
		printed++
	}
	_ = out.Flush()
	if limit >= 0 {
		return 1
	}
	return 0
}

// cursorNum is the entry number in a fake cursor (its i=), 0 if none.
func cursorNum(c string) int64 {
	for _, part := range strings.Split(c, ";") {
		if v, ok := strings.CutPrefix(part, "i="); ok {
			n, _ := strconv.ParseInt(v, 16, 64)
			return n
		}
	}
	return 0
}
