package dovecotpolicy

import (
	"net"
	"os"
	"strconv"
	"strings"
)

// unprivilegedPortStart is the sysctl naming the first port a process
// without CAP_NET_BIND_SERVICE may bind (1024 unless changed); it applies to
// IPv6 too.
const unprivilegedPortStart = "/proc/sys/net/ipv4/ip_unprivileged_port_start"

// SquattablePort says whether any local user could bind addr's port while
// relaygate does not hold it (a restart, a crash, -takeover's gap, a boot
// where relaygate starts late): whoever does receives Dovecot's reports,
// the secret header with each (docs/DOVECOT-POLICY.md, "Security"). It
// returns the port and the first port an unprivileged process may bind.
func SquattablePort(addr net.Addr) (port, unprivilegedStart int, ok bool) {
	return squattable(addr, unprivilegedPortStart)
}

func squattable(addr net.Addr, sysctl string) (int, int, bool) {
	start := 1024
	if b, err := os.ReadFile(sysctl); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 0 {
			start = n
		}
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return 0, start, false
	}
	return tcp.Port, start, tcp.Port >= start
}
