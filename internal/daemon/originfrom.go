package daemon

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"

	"github.com/relaygate/relaygate/internal/postfix"
)

// ParseOriginFrom reads -origin-from into o: CIDRs, "tls", "unix" (root on
// the -unix socket) and "unix:USER" (a user name or uid).
func ParseOriginFrom(o OriginConfig, value string) (OriginConfig, error) {
	var cidrs []string
	for _, f := range strings.Split(value, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
		case f == "tls":
			o.FromTLS = true
		case f == "unix":
			o.FromUnix = append(o.FromUnix, 0)
		case strings.HasPrefix(f, "unix:"):
			uid, err := lookupUID(strings.TrimPrefix(f, "unix:"))
			if err != nil {
				return o, fmt.Errorf("-origin-from %s: %w", f, err)
			}
			if uid == overflowUID {
				// The kernel reports this uid for a sender it cannot map
				// into relaygate's user namespace, and for credentials it
				// never recorded: trusting it trusts anyone.
				return o, fmt.Errorf("-origin-from %s: uid %d is the kernel's overflow uid (nobody), which stands for any sender it cannot name", f, uid)
			}
			o.FromUnix = append(o.FromUnix, uid)
		default:
			cidrs = append(cidrs, f)
		}
	}
	var err error
	if o.From, err = postfix.ParsePrefixes(strings.Join(cidrs, ",")); err != nil {
		return o, fmt.Errorf("-origin-from: %w (want CIDRs, tls, unix or unix:USER)", err)
	}
	return o, nil
}

// overflowUID is Linux's default /proc/sys/kernel/overflowuid.
const overflowUID = 65534

// lookupUID reads a user name or a numeric uid.
func lookupUID(name string) (uint32, error) {
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		return uint32(n), nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, fmt.Errorf("no such user: %w", err)
	}
	n, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("user %s has uid %q", name, u.Uid)
	}
	return uint32(n), nil
}
