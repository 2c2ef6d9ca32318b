// Package sendtest holds what the daemon's tests and the command's tests
// both do to a running relaygate: send it syslog lines, and ask whether a
// key reached its map. (Apart from testutil, which cdbwriter's own tests
// import, because it reads the map with cdbwriter.)
package sendtest

import (
	"fmt"
	"io"
	"net"
	"os/exec"
	"slices"
	"testing"

	"github.com/relaygate/relaygate/cdbwriter"
	"github.com/relaygate/relaygate/internal/testutil"
)

// InMap asks the real Postfix whether key is in the map. Without postmap,
// outside CI (where it must be installed), the Go reader answers, so the
// README's `go test ./...` checks the daemon on a machine without Postfix.
func InMap(t testing.TB, mapPath, key string) bool {
	t.Helper()
	if _, err := exec.LookPath("postmap"); err != nil && !testutil.InCI() {
		keys, err := cdbwriter.ReadMap(mapPath)
		return err == nil && slices.Contains(keys, key)
	}
	v, ok := testutil.PostmapQuery(t, "", mapPath, key)
	return ok && v == "OK"
}

// UDP sends each message as a datagram to addr.
func UDP(t testing.TB, addr string, msgs ...string) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range msgs {
		if _, err := c.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
}

// TCP writes stream to one connection to addr.
func TCP(t testing.TB, addr, stream string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, stream); err != nil {
		t.Fatal(err)
	}
}

// Octet frames msg with its length (RFC 6587 octet counting).
func Octet(msg string) string { return fmt.Sprintf("%d %s", len(msg), msg) }
