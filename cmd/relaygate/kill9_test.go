package main

import (
	"fmt"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

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
		keys, err := mapKeys(mapPath)
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
		before, err := mapKeys(mapPath)
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

		after, err := mapKeys(mapPath)
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
