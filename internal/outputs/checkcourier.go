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
	rules, _, err := ro.readStatic()
	if err != nil {
		return append(out, postfix.Finding{ID: "courier-static", Problem: true, Msg: err.Error(),
			Fix: "write each rule as makesmtpaccess reads it: ADDRESS<TAB>allow,NAME=value… or ADDRESS<TAB>deny, each key once"})
	}
	for _, r := range rules {
		if courierDenies(r.value) || !courierSetsRelay(r.value) {
			continue
		}
		if r.key == "*" || courierWideKey(r.key) {
			out = append(out, postfix.Finding{ID: "courier-open-relay", Problem: true,
				Msg: fmt.Sprintf("%s: the rule %q (line %d) sets RELAYCLIENT for every client or a whole public /8 (IPv6: a /32 or more): an open relay for them, whatever relaygate grants", c.CourierStatic, r.key+"\t"+r.value, r.line),
				Fix: "let only your own networks relay (127.0.0.1 and your LAN); make the catch-all * allow without RELAYCLIENT"})
		}
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
		return []postfix.Finding{{ID: "courier-esmtpd", Problem: true,
			Msg: fmt.Sprintf("%s: esmtpd reads %q (ACCESSFILE plus .dat), not -courier-smtpaccess %s: granted clients cannot relay", conf, access+".dat", c.CourierSmtpaccess),
			Fix: fmt.Sprintf("name -courier-smtpaccess FILE.dat and set ACCESSFILE=FILE in %s (then esmtpd stop; esmtpd start once)", conf)}}
	}
	var out []postfix.Finding
	if _, err := os.Stat(access); err == nil && c.CourierStatic == "" {
		out = append(out, postfix.Finding{ID: "courier-static", Problem: true,
			Msg: fmt.Sprintf("%s holds the site's rules makesmtpaccess compiles into %s; without -courier-smtpaccess-static relaygate replaces that file with the grants alone (127.0.0.1 and your networks could no longer relay)", access, c.CourierSmtpaccess),
			Fix: "pass -courier-smtpaccess-static " + access})
	}
	return append(out, postfix.Finding{ID: "courier-esmtpd", Msg: fmt.Sprintf("%s: esmtpd reads %s; running makesmtpaccess rewrites it without the grants until relaygate's next write (at most -courier-smtpaccess-static's next poll, 5 s, when you changed the rules)", conf, c.CourierSmtpaccess)})
}
