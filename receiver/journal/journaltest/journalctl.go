package journaltest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// jsonThreshold is journalctl's JSON_THRESHOLD: without --all, a field
// whose name, "=" and value take this many bytes or more is printed as
// null.
const jsonThreshold = 4096

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
		follow, all   bool
		lines         = -1
		outputFields  map[string]bool
		machineID     string
		matches       = map[string]bool{}
	)
	for _, a := range args {
		switch {
		case a == "--all":
			all = true
		case strings.HasPrefix(a, "--lines="):
			lines, _ = strconv.Atoi(strings.TrimPrefix(a, "--lines="))
		case strings.HasPrefix(a, "--output-fields="):
			outputFields = map[string]bool{}
			for _, f := range strings.Split(strings.TrimPrefix(a, "--output-fields="), ",") {
				outputFields[f] = true
			}
		case strings.HasPrefix(a, "_MACHINE_ID="):
			machineID = strings.TrimPrefix(a, "_MACHINE_ID=")
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
		if machineID != "" {
			if id, _ := m["_MACHINE_ID"].(string); id != machineID {
				continue
			}
		}
		if lines >= 0 && printed >= lines {
			break
		}
		if limit >= 0 && printed >= limit {
			_ = out.Flush()
			return 1
		}
		if msg, ok := m[FailField].(string); ok && (outputFields == nil || outputFields["MESSAGE"]) {
			_ = out.Flush()
			fmt.Fprintln(os.Stderr, msg)
			return 1
		}
		if outputFields != nil || !all {
			l = shown(m, outputFields, all)
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

// shown is an entry's line as journalctl prints it with --output-fields
// (nil: every field) and without --all.
func shown(m map[string]any, outputFields map[string]bool, all bool) string {
	out := map[string]any{}
	for k, v := range m {
		if k == FailField || outputFields != nil && !outputFields[k] && !strings.HasPrefix(k, "__") {
			continue
		}
		if !all && k != "__CURSOR" {
			v = nullIfLarge(k, v)
		}
		out[k] = v
	}
	b, _ := json.Marshal(out)
	return string(b) + "\n"
}

// nullIfLarge is v, or nil if journalctl would print it as null without
// --all; in an array (a repeated field), each value by itself.
func nullIfLarge(name string, v any) any {
	switch x := v.(type) {
	case string:
		if len(name)+1+len(x) >= jsonThreshold {
			return nil
		}
	case []any:
		if len(x) > 0 {
			if _, bytes := x[0].(float64); bytes { // a byte array
				if len(name)+1+len(x) >= jsonThreshold {
					return nil
				}
				return v
			}
		}
		out := make([]any, len(x))
		for i, y := range x {
			out[i] = nullIfLarge(name, y)
		}
		return out
	}
	return v
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
