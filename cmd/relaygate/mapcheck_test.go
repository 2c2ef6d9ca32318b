package main

// Reading a published map the way its users do: relaygate's own reader,
// and the real postmap.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/internal/testutil"
)

// mapKeys returns the keys of the cdb at path, sorted, as relaygate's own
// reader (cdbwriter.ReadMap) reads them, and fails on a key that repeats.
// A map cut short fails the read; that every key is found through its hash
// slot with the value OK is what checkMapWithPostmap asks the real postmap.
func mapKeys(path string) ([]string, error) {
	keys, err := cdbwriter.ReadMap(path)
	if err != nil {
		return nil, err
	}
	sort.Strings(keys)
	for i := 1; i < len(keys); i++ {
		if keys[i] == keys[i-1] {
			return nil, fmt.Errorf("%s: duplicate key %q", path, keys[i])
		}
	}
	return keys, nil
}

// lookPostmap returns the path of postmap. Under CI=true a missing postmap
// fails the test; elsewhere it returns "" and the test checks the map with
// the Go reader only.
func lookPostmap(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("postmap")
	if err == nil {
		return p
	}
	if testutil.InCI() {
		t.Fatalf("postmap not installed (apt-get install postfix postfix-cdb): %v", err)
	}
	t.Logf("postmap not installed: checking the map with the Go reader only")
	return ""
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
// supported is false and the caller relies on mapKeys plus lookups.
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
				"completeness is checked with mapKeys, and every key with postmap -q (err %v)", err)
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
