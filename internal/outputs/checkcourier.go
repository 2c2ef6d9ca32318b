package outputs

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/relaygate/relaygate/internal/postfix"
)

// esmtpdAccessFile is ACCESSFILE= in Courier's esmtpd configuration (a
// shell fragment the start script sources).
var esmtpdAccessFile = regexp.MustCompile(`^\s*ACCESSFILE=["']?([^"'\s]*)["']?\s*$`)

func checkCourier(c Config, o CheckOptions) []postfix.Finding {
	var out []postfix.Finding
	if md, err := findMakedat(); err != nil {
		out = append(out, postfix.Finding{ID: "courier-makedat", Problem: true, Msg: err.Error(),
			Fix: "install Courier's makedat (Debian: courier-base) where relaygate finds it, in PATH or /usr/bin"})
	} else {
		out = append(out, postfix.Finding{ID: "courier-makedat", Msg: "makedat: " + md})
	}
	argv := strings.Fields(c.courierRestart())
	root := o.RunAs == "root" || (o.RunAs == "" && os.Geteuid() == 0)
	if b := filepath.Base(argv[0]); !root && (b == "esmtpd" || b == "couriertcpd") {
		who := o.RunAs
		if who == "" {
			if u, err := user.Current(); err == nil {
				who = u.Username
			}
		}
		out = append(out, postfix.Finding{ID: "courier-restart", Problem: true,
			Msg: fmt.Sprintf("%s signals couriertcpd, which runs as root or courier, and relaygate runs as %s: every restart will fail, and couriertcpd will keep reading the old file", b, who),
			Fix: "allow it in sudoers (" + who + " ALL=(root) NOPASSWD: /usr/sbin/esmtpd restart) and pass -courier-restart 'sudo -n /usr/sbin/esmtpd restart'"})
	}
	if c.CourierStatic != "" {
		out = append(out, checkCourierStatic(c)...)
	}
	return append(out, checkEsmtpdConf(c, o)...)
}

func checkCourierStatic(c Config) []postfix.Finding {
	var out []postfix.Finding
	if f, ok := checkWritableByOthers(c.CourierStatic); !ok {
		out = append(out, f)
	}
	ro := newCourier(c, "")
	rules, err := ro.site.read()
	if err != nil {
		return append(out, postfix.Finding{ID: "courier-static", Problem: true, Msg: err.Error(),
			Fix: "write each rule as makesmtpaccess reads it: ADDRESS<TAB>allow,NAME=value… or ADDRESS<TAB>deny, each key once"})
	}
	var never []string
	for _, r := range rules {
		if !courierKeyLookedUp(r.key) && len(never) < 5 {
			never = append(never, fmt.Sprintf("%q (line %d)", r.key, r.line))
		}
		if courierDenies(r.value) || !courierSetsRelay(r.value) {
			continue
		}
		if r.key == "*" || courierWideKey(r.key) {
			out = append(out, postfix.Finding{ID: "courier-open-relay", Problem: true,
				Msg: fmt.Sprintf("%s: the rule %q (line %d) sets RELAYCLIENT for every client or a whole public /8 (IPv6: a /32 or more): an open relay for them, whatever relaygate grants", c.CourierStatic, r.key+"\t"+r.value, r.line),
				Fix: "let only your own networks relay (127.0.0.1 and your LAN); make the catch-all * allow without RELAYCLIENT"})
		}
	}
	if len(never) > 0 {
		out = append(out, postfix.Finding{ID: "courier-static-keys", Problem: true,
			Msg: fmt.Sprintf("%s: couriertcpd never looks up the keys %s: those rules apply to no client (a deny there denies no one, and does not keep a grant out)", c.CourierStatic, strings.Join(never, ", ")),
			Fix: "write keys as couriertcpd looks them up, then a TAB: 192.0.2.7, 192.0.2 (no leading zeros), :2001:0db8:0000:0000:0000:0000:0000:0001, :2001:0db8 (\":\" and four lower-case digits a group), *; or a network: 2001:db8::/32"})
	}
	return append(out, postfix.Finding{ID: "courier-static", Msg: fmt.Sprintf("%s: %d rules; each grant gets the rule couriertcpd would apply to its address (none if it denies the address or its network) plus RELAYCLIENT", c.CourierStatic, len(rules))})
}

// courierSetsRelay says whether couriertcpd sets RELAYCLIENT for value
// (tcpd.c: "allow" and a comma dropped, then NAME[=value] items split at
// commas outside quotes).
func courierSetsRelay(value string) bool {
	v, _ := strings.CutPrefix(value, "allow")
	v, _ = strings.CutPrefix(v, ",")
	var quote rune
	start := 0
	item := func(s string) bool {
		name, _, _ := strings.Cut(strings.ReplaceAll(strings.ReplaceAll(s, `"`, ""), "'", ""), "=")
		return strings.TrimSpace(name) == "RELAYCLIENT"
	}
	for i, r := range v {
		switch {
		case quote == 0 && (r == '"' || r == '\''):
			quote = r
		case quote != 0 && r == quote:
			quote = 0
		case quote == 0 && r == ',':
			if item(v[start:i]) {
				return true
			}
			start = i + 1
		}
	}
	return item(v[start:])
}

// courierWideKey: an IPv4 key of one public octet (a /8), or an IPv6 key
// of one or two groups (a /32 or more).
func courierWideKey(key string) bool {
	if strings.HasPrefix(key, ":") {
		return strings.Count(key, ":") <= 2
	}
	n, err := strconv.Atoi(key)
	return err == nil && n != 10 && n != 127 && n >= 0 && n <= 255
}

// courierKeyLookedUp says whether couriertcpd ever looks key up: "*", an
// IPv4 address or its first octets, in decimal without leading zeros; an
// IPv6 address or its first groups, each ":" and four lower-case hex
// digits; with -accesslocal, a whole address or "*" then "." and a port.
func courierKeyLookedUp(key string) bool {
	if rest, ok := strings.CutPrefix(key, ":"); ok {
		addr, port, hasPort := strings.Cut(rest, ".")
		groups := strings.Split(addr, ":")
		if len(groups) > 8 || (hasPort && (len(groups) != 8 || !courierDecimal(port, 65535))) {
			return false
		}
		for _, g := range groups {
			if len(g) != 4 || strings.Trim(g, "0123456789abcdef") != "" {
				return false
			}
		}
		return true
	}
	parts := strings.Split(key, ".")
	if parts[0] == "*" {
		return len(parts) == 1 || (len(parts) == 2 && courierDecimal(parts[1], 65535))
	}
	if len(parts) > 5 || (len(parts) == 5 && !courierDecimal(parts[4], 65535)) {
		return false
	}
	for _, p := range parts[:min(len(parts), 4)] {
		if !courierDecimal(p, 255) {
			return false
		}
	}
	return true
}

// courierDecimal: s is a number from 0 to max written without sign or
// leading zeros.
func courierDecimal(s string, max int) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= max && strconv.Itoa(n) == s
}

// esmtpdAccessLocal is a TCPDOPTS= line passing couriertcpd -accesslocal.
var esmtpdAccessLocal = regexp.MustCompile(`^\s*TCPDOPTS=.*-accesslocal`)

// checkAccessLocal: with -accesslocal couriertcpd also looks up the
// address a client connected to (tcpd.c: "ADDRESS.PORT", then cut as a
// client's address is), and sets that record's variables for the
// connection: a grant for one of this host's own addresses would give
// RELAYCLIENT to every client connecting to it.
func checkAccessLocal(conf string, text []byte) []postfix.Finding {
	var out []postfix.Finding
	files := map[string][]byte{conf: text}
	for _, sfx := range []string{"-msa", "-ssl"} {
		if b, err := os.ReadFile(conf + sfx); err == nil {
			files[conf+sfx] = b
		}
	}
	for _, f := range []string{conf, conf + "-msa", conf + "-ssl"} {
		for _, l := range strings.Split(string(files[f]), "\n") {
			if esmtpdAccessLocal.MatchString(l) {
				out = append(out, postfix.Finding{ID: "courier-accesslocal", Problem: true,
					Msg: fmt.Sprintf("%s: TCPDOPTS passes -accesslocal: couriertcpd then also looks up the address a client connected to, and a grant for one of this host's own addresses (a webmail or a monitoring check logging in from it) sets RELAYCLIENT for every client connecting to that address: an open relay", f),
					Fix: "drop -accesslocal, or keep this host's own addresses from ever being granted (-exclude with each of them, /32 or /128)"})
				break
			}
		}
	}
	return out
}

// checkEsmtpdConf: esmtpd reads ACCESSFILE.dat (the start script adds
// the .dat); it must be -courier-smtpaccess, and the rules makesmtpaccess
// compiles from ACCESSFILE must not be dropped.
func checkEsmtpdConf(c Config, o CheckOptions) []postfix.Finding {
	conf := o.CourierEsmtpd
	if conf == "" {
		conf = "/etc/courier/esmtpd"
	}
	b, err := os.ReadFile(conf)
	if err != nil {
		return []postfix.Finding{{ID: "courier-esmtpd", Problem: true, Msg: err.Error(),
			Fix: "set ACCESSFILE in Courier's esmtpd configuration to -courier-smtpaccess without .dat"}}
	}
	access := ""
	for _, l := range strings.Split(string(b), "\n") {
		if m := esmtpdAccessFile.FindStringSubmatch(l); m != nil {
			access = m[1]
		}
	}
	sysconf := filepath.Dir(conf)
	access = strings.NewReplacer("${sysconfdir}", sysconf, "$sysconfdir", sysconf).Replace(access)
	want := strings.TrimSuffix(c.CourierSmtpaccess, ".dat")
	if access == "" || realPath(access+".dat") != realPath(c.CourierSmtpaccess) || want == c.CourierSmtpaccess {
		return append(checkAccessLocal(conf, b), postfix.Finding{ID: "courier-esmtpd", Problem: true,
			Msg: fmt.Sprintf("%s: esmtpd reads %q (ACCESSFILE plus .dat), not -courier-smtpaccess %s: granted clients cannot relay", conf, access+".dat", c.CourierSmtpaccess),
			Fix: fmt.Sprintf("name -courier-smtpaccess FILE.dat and set ACCESSFILE=FILE in %s (then esmtpd stop; esmtpd start once)", conf)})
	}
	out := checkAccessLocal(conf, b)
	if _, err := os.Stat(access); err == nil && c.CourierStatic == "" {
		out = append(out, postfix.Finding{ID: "courier-static", Problem: true,
			Msg: fmt.Sprintf("%s holds the site's rules makesmtpaccess compiles into %s; without -courier-smtpaccess-static relaygate replaces that file with the grants alone (127.0.0.1 and your networks could no longer relay)", access, c.CourierSmtpaccess),
			Fix: "pass -courier-smtpaccess-static " + access})
	}
	return append(out, postfix.Finding{ID: "courier-esmtpd", Msg: fmt.Sprintf("%s: esmtpd reads %s; running makesmtpaccess rewrites it without the grants until relaygate's next write (at most -courier-smtpaccess-static's next poll, 5 s, when you changed the rules)", conf, c.CourierSmtpaccess)})
}
