package receiver

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// udpSocketDrops reads how many datagrams the kernel dropped on the UDP
// socket bound at ap because its receive buffer was full: the one loss
// relaygate itself cannot see or count. Linux reports it per socket in the
// last column of /proc/self/net/udp (udp6 for IPv6 sockets); /proc/self/net,
// unlike /proc/net, stays visible under systemd's ProcSubset=pid. ok is
// false when the kernel does not say.
func udpSocketDrops(ap netip.AddrPort) (drops int64, ok bool) {
	// Go binds a wildcard "udp" address as a dual-stack IPv6 socket, so
	// look in both tables and compare unmapped addresses.
	for _, file := range []string{"/proc/self/net/udp", "/proc/self/net/udp6"} {
		if n, found := procUDPDrops(file, ap); found {
			return n, true
		}
	}
	return 0, false
}

func procUDPDrops(file string, want netip.AddrPort) (int64, bool) {
	f, err := os.Open(file)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	wantAddr := want.Addr().Unmap()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 13 {
			continue
		}
		local, ok := parseProcAddr(fields[1])
		if !ok || local.Port() != want.Port() {
			continue
		}
		got := local.Addr().Unmap()
		if got != wantAddr && !(got.IsUnspecified() && wantAddr.IsUnspecified()) {
			continue
		}
		n, err := strconv.ParseInt(fields[len(fields)-1], 10, 64)
		if err != nil {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// parseProcAddr reads /proc/net/udp's "0100007F:158A": the address as
// 32-bit words in host byte order (little-endian on every platform Go
// builds relaygate for that has /proc), the port in hex.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	hexAddr, hexPort, found := strings.Cut(s, ":")
	if !found {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(hexAddr)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(b[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(addr, uint16(port)), true
}
