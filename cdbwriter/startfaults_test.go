package cdbwriter

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/grants"
)

// goodMap makes dir hold what a clean stop of relaygate with n grants
// leaves: a map and a state file that agree. It returns the map's keys.
func goodMap(t *testing.T, dir string, n int) []string {
	t.Helper()
	svc := newTestService(t, dir, time.Hour)
	for i := range n {
		svc.login(grant(fmt.Sprintf("198.51.%d.%d", i/250, 1+i%250)), "", t0)
	}
	if err := svc.shutdown(t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	keys := mapKeys(t, dir)
	if len(keys) != n {
		t.Fatalf("setup: map has %d keys, want %d", len(keys), n)
	}
	return keys
}

func startAgain(t *testing.T, dir string, at time.Time) (*Service, error) {
	t.Helper()
	svc := NewService(testConfig(t, dir), grants.NewTable(grants.TableConfig{Grace: time.Hour}))
	return svc, svc.Start(at)
}

// TestDamagedStateKeepsTheMap: whatever happened to the state file's
// content, a restart publishes every address the map had that had not
// expired (issue 11, point 4). Each of these used to publish an empty map.
func TestDamagedStateKeepsTheMap(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 100<<10)
	for i := range random {
		random[i] = byte(rnd.UintN(256))
	}
	for name, damage := range map[string]func(state string){
		"random 100 KB": func(state string) { os.WriteFile(state, random, 0o600) },
		"NULs":          func(state string) { os.WriteFile(state, make([]byte, 100<<10), 0o600) },
		"empty":         func(state string) { os.WriteFile(state, nil, 0o600) },
		"header only":   func(state string) { os.WriteFile(state, []byte(stateHeader+"\n"), 0o600) },
		"deleted":       func(state string) { os.Remove(state) },
		"one line damaged": func(state string) {
			data, _ := os.ReadFile(state)
			lines := bytes.SplitAfter(data, []byte("\n"))
			lines[3] = []byte("{\"addr\":\"198.51.\x00\n")
			os.WriteFile(state, bytes.Join(lines, nil), 0o600)
		},
		"a line over the bound": func(state string) {
			data, _ := os.ReadFile(state)
			long := append(bytes.Repeat([]byte("x"), 3<<20), '\n')
			os.WriteFile(state, append(long, data...), 0o600)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			want := goodMap(t, dir, 300)
			damage(filepath.Join(dir, "pbs.state"))
			svc, err := startAgain(t, dir, t0.Add(time.Minute))
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			if got := mapKeys(t, dir); !slices.Equal(got, want) {
				t.Fatalf("map after restart has %d keys, want the %d it had; missing %v", len(got), len(want), firstMissing(want, got))
			}
			// And no lost address comes back for ever: it expires one
			// grace period after the start at the latest.
			svc.tick(t0.Add(time.Minute + time.Hour))
			if got := mapKeys(t, dir); len(got) != 0 {
				t.Fatalf("%d carried-over addresses outlived one grace period", len(got))
			}
		})
	}
}

func firstMissing(want, got []string) []string {
	var m []string
	for _, k := range want {
		if !slices.Contains(got, k) && len(m) < 5 {
			m = append(m, k)
		}
	}
	return m
}

// TestUnusableStateRefusesToStart: a state path that exists but is not a
// regular file stops the start with an error naming it, before anything is
// written: the map stays byte for byte, and no temporary file is left. A
// FIFO must not hang the start, nor /dev/zero fill memory (point 7).
func TestUnusableStateRefusesToStart(t *testing.T) {
	for name, mk := range map[string]func(t *testing.T, state string){
		"directory": func(t *testing.T, state string) {
			if err := os.Mkdir(state, 0o700); err != nil {
				t.Fatal(err)
			}
		},
		"FIFO": func(t *testing.T, state string) {
			if err := syscall.Mkfifo(state, 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"symlink to /dev/zero": func(t *testing.T, state string) {
			if err := os.Symlink("/dev/zero", state); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			goodMap(t, dir, 300)
			state := filepath.Join(dir, "pbs.state")
			os.Remove(state)
			mk(t, state)
			before, _ := os.ReadFile(filepath.Join(dir, "pbs.cdb"))
			_, err := startAgain(t, dir, t0.Add(time.Minute))
			if err == nil || !strings.Contains(err.Error(), state) || !strings.Contains(err.Error(), "fix:") {
				t.Fatalf("Start = %v, want an error naming %s and the fix", err, state)
			}
			after, _ := os.ReadFile(filepath.Join(dir, "pbs.cdb"))
			if !bytes.Equal(before, after) {
				t.Fatalf("the map changed although Start failed")
			}
			requireNoTempFiles(t, dir)
		})
	}
}

// TestStateLongLineIsNotBuffered: a line over the bound is skipped as
// damage without being held in memory (point 7: /dev/zero grew relaygate
// to 24 GB), and the lines after it are read.
func TestStateLongLineIsNotBuffered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pbs.state")
	var b bytes.Buffer
	b.WriteString(stateHeader + "\n")
	b.Write(bytes.Repeat([]byte{'a'}, 64<<20))
	b.WriteString("\n")
	b.Write(appendStateLine(nil, grant("192.0.2.1").Addr, t0.Add(time.Hour), "u", "d", "h", nil))
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	b = bytes.Buffer{}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	gs, err := LoadState(path)
	runtime.ReadMemStats(&after)
	if len(gs) != 1 || err == nil {
		t.Fatalf("LoadState = %v, %v; want the one grant after the long line, and damage", gs, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Fatalf("reading a 64 MiB line allocated %d MiB, want it skipped unbuffered", alloc>>20)
	}
}
