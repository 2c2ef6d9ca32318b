package fleet

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func testEvent(i int) (string, []byte) {
	ev := Event{Kind: KindLogin, Addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), User: fmt.Sprintf("u%d", i), At: time.Unix(1_765_000_000, int64(i))}
	return fmt.Sprintf("id-%d", i), ev.Encode()
}

func TestOutboxAckTrimAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.state"+OutboxSuffix)
	ob, _, err := OpenOutbox(path, 5)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var data [][]byte
	for i := range 7 {
		id, d := testEvent(i)
		ids, data = append(ids, id), append(data, d)
	}
	dropped, err := ob.Add(ids, data)
	if err != nil || dropped != 2 || ob.Len() != 5 {
		t.Fatalf("Add 7 into 5: dropped %d, len %d, %v", dropped, ob.Len(), err)
	}
	batch := ob.Take(3)
	if len(batch) != 3 || batch[0].id != "id-0" {
		t.Fatalf("Take: %v", batch)
	}
	ob.Done(batch[0], true)
	ob.Done(batch[1], false) // no acknowledgement: sent again
	ob.Done(batch[2], true)
	if err := ob.Trim(); err != nil {
		t.Fatal(err)
	}
	if ob.Len() != 3 {
		t.Fatalf("after acks: %d wait, want 3", ob.Len())
	}
	if again := ob.Take(10); len(again) != 3 || again[0].id != "id-1" {
		t.Fatalf("the unacknowledged event is not sent again first: %v", again)
	}
	ob.Close()
	// A restart publishes what was not acknowledged (the file still has
	// the acknowledged id-2 too, until the next trim: a harmless duplicate).
	ob2, skipped, err := OpenOutbox(path, 5)
	if err != nil || skipped != 0 {
		t.Fatalf("reopen: skipped %d, %v", skipped, err)
	}
	var got []string
	for _, e := range ob2.Take(10) {
		got = append(got, e.id)
		ob2.Done(e, true)
	}
	if !strings.Contains(strings.Join(got, ","), "id-1,") || !strings.HasSuffix(strings.Join(got, ","), "id-4") {
		t.Fatalf("reloaded %v", got)
	}
	if err := ob2.Trim(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("everything acknowledged: the file must be empty: %v %v", fi, err)
	}
	ob2.Close()
}

func TestOutboxSkipsTornAndForeignLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x"+OutboxSuffix)
	_, d := testEvent(1)
	content := "id-1 " + string(d) + "\n" + "garbage\n" + "id-2 {\"v\":1,\"k\":\"login\",\"a\":\"0.0.0.0\",\"t\":1765000000000000000}\n" + "id-3 " + string(d[:10])
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	ob, skipped, err := OpenOutbox(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	if ob.Len() != 1 || skipped != 3 {
		t.Fatalf("len %d skipped %d, want 1 and 3 (garbage, an address never granted, a torn line)", ob.Len(), skipped)
	}
	// Appending after a torn tail starts a fresh line.
	id, d2 := testEvent(2)
	if _, err := ob.Add([]string{id}, [][]byte{d2}); err != nil {
		t.Fatal(err)
	}
	ob.Close()
	ob2, skipped, err := OpenOutbox(path, 10)
	if err != nil || skipped != 0 || ob2.Len() != 2 {
		t.Fatalf("after append: len %d skipped %d %v", ob2.Len(), skipped, err)
	}
	ob2.Close()
}

// TestOutboxSurvivesKill9 kills a process that appends to an outbox with
// SIGKILL, and checks that every event it had been told was added (Add
// returned: fsynced) is read back, in order.
func TestOutboxSurvivesKill9(t *testing.T) {
	if os.Getenv("RELAYGATE_OUTBOX_CHILD") != "" {
		outboxChild(os.Getenv("RELAYGATE_OUTBOX_CHILD"))
		return
	}
	path := filepath.Join(t.TempDir(), "x"+OutboxSuffix)
	cmd := exec.Command(os.Args[0], "-test.run=^TestOutboxSurvivesKill9$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RELAYGATE_OUTBOX_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	acked := 0
	for sc.Scan() {
		if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "added ")); err == nil {
			acked = n
			if acked >= 3000 {
				break
			}
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if acked < 3000 {
		t.Fatalf("the child reported %d events", acked)
	}
	ob, skipped, err := OpenOutbox(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	if ob.Len() < acked {
		t.Fatalf("after kill -9: %d events in the outbox, the child had added %d", ob.Len(), acked)
	}
	for i, e := range ob.Take(ob.Len()) {
		if e.id != fmt.Sprintf("id-%d", i) {
			t.Fatalf("event %d is %s", i, e.id)
		}
	}
	t.Logf("kill -9 after %d acknowledged appends: %d read back, %d torn lines skipped", acked, ob.Len(), skipped)
}

func outboxChild(path string) {
	ob, _, err := OpenOutbox(path, 1<<20)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for i := 0; ; i += 10 {
		var ids []string
		var data [][]byte
		for j := i; j < i+10; j++ {
			id, d := testEvent(j)
			ids, data = append(ids, id), append(data, d)
		}
		if _, err := ob.Add(ids, data); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Printf("added %d\n", i+10)
	}
}

// TestOutboxSkipsDamagedIDs: a line whose id is not one relaygate makes
// (huge: a message over the server's max_payload; a control character:
// a broken header) is skipped, so it cannot sit at the head of the queue
// and stop every later event from being published.
func TestOutboxSkipsDamagedIDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x"+OutboxSuffix)
	_, d := testEvent(1)
	content := strings.Repeat("A", 2<<20) + " " + string(d) + "\n" +
		"id\r-x " + string(d) + "\n" +
		"id\x00x " + string(d) + "\n" +
		"rg1-Zm9vYmFyYmF6cXV4cXV1eA " + string(d) + "\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	ob, skipped, err := OpenOutbox(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	if ob.Len() != 1 || skipped != 3 {
		t.Fatalf("len %d skipped %d, want the one good line and 3 skipped", ob.Len(), skipped)
	}
}
