package dovecotpolicy

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestSquattablePort(t *testing.T) {
	dir := t.TempDir()
	sysctl := filepath.Join(dir, "ip_unprivileged_port_start")
	addr := func(port int) net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port} }
	for _, tc := range []struct {
		sysctl string // "" : no file (1024)
		port   int
		want   bool
	}{
		{"", 9726, true}, {"", 1023, false}, {"", 1024, true}, {"", 726, false},
		{"1024\n", 9726, true}, {"10000\n", 9726, false}, {"0\n", 726, true}, {"junk", 1023, false},
	} {
		path := filepath.Join(dir, "none")
		if tc.sysctl != "" {
			path = sysctl
			if err := os.WriteFile(sysctl, []byte(tc.sysctl), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if port, _, got := squattable(addr(tc.port), path); got != tc.want || port != tc.port {
			t.Errorf("sysctl %q, port %d: squattable %v (port %d), want %v", tc.sysctl, tc.port, got, port, tc.want)
		}
	}
	if _, _, got := squattable(&net.UnixAddr{Name: "/x", Net: "unix"}, sysctl); got {
		t.Error("a unix address is not a port")
	}
	// This host's own sysctl is read (whatever it says).
	if port, start, _ := SquattablePort(addr(9726)); port != 9726 || start < 0 {
		t.Errorf("SquattablePort: %d %d", port, start)
	}
}
