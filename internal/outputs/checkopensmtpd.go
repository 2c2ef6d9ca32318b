package outputs

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/relaygate/relaygate/internal/postfix"
)

// smtpdTable is an smtpd.conf table declaration: table NAME [type:]PATH.
var smtpdTable = regexp.MustCompile(`^\s*table\s+(\S+)\s+(?:file:)?(/\S+)\s*$`)

func checkOpenSMTPD(c Config, o CheckOptions) []postfix.Finding {
	var out []postfix.Finding
	argv := strings.Fields(c.opensmtpdUpdate())
	root := o.RunAs == "root" || (o.RunAs == "" && os.Geteuid() == 0)
	if !root && filepath.Base(argv[0]) == "smtpctl" {
		who := o.RunAs
		if who == "" {
			if u, err := user.Current(); err == nil {
				who = u.Username
			}
		}
		out = append(out, postfix.Finding{ID: "opensmtpd-update", Problem: true,
			Msg: fmt.Sprintf("smtpctl update table needs root, and relaygate runs as %s: every table update will fail", who),
			Fix: "allow it in sudoers (" + who + " ALL=(root) NOPASSWD: /usr/sbin/smtpctl update table relaygate) and pass -opensmtpd-update 'sudo -n smtpctl update table relaygate'"})
	}
	conf := o.SMTPDConf
	if conf == "" {
		conf = "/etc/smtpd.conf"
	}
	b, err := os.ReadFile(conf)
	if err != nil {
		return append(out, postfix.Finding{ID: "opensmtpd-conf", Problem: true, Msg: err.Error(),
			Fix: "add examples/opensmtpd-relaygate.conf's table and match lines to smtpd.conf"})
	}
	name := ""
	for _, l := range strings.Split(string(b), "\n") {
		if m := smtpdTable.FindStringSubmatch(l); m != nil && abs(m[2]) == abs(c.OpenSMTPDTable) {
			name = m[1]
		}
	}
	if name == "" {
		return append(out, postfix.Finding{ID: "opensmtpd-conf", Problem: true,
			Msg: fmt.Sprintf("%s declares no table on %s: smtpd never reads the grants", conf, c.OpenSMTPDTable),
			Fix: "add: table relaygate file:" + c.OpenSMTPDTable})
	}
	if len(argv) >= 4 && filepath.Base(argv[len(argv)-4]) == "smtpctl" && argv[len(argv)-1] != name {
		out = append(out, postfix.Finding{ID: "opensmtpd-update", Problem: true,
			Msg: fmt.Sprintf("-opensmtpd-update updates the table %s, but %s names the table on %s %s", argv[len(argv)-1], conf, c.OpenSMTPDTable, name),
			Fix: "end -opensmtpd-update with update table " + name})
	}
	matchLine := regexp.MustCompile(`^\s*match\b.*?(!\s*)?\bfrom\s+src\s+<` + regexp.QuoteMeta(name) + `>.*\baction\b`)
	relaysFor := false
	for _, l := range strings.Split(string(b), "\n") {
		m := matchLine.FindStringSubmatch(l)
		switch {
		case m == nil:
		case m[1] != "":
			out = append(out, postfix.Finding{ID: "opensmtpd-negated", Problem: true,
				Msg: fmt.Sprintf("%s: %q matches every client NOT in <%s>: if its action relays, every ungranted client may relay", conf, strings.TrimSpace(l), name),
				Fix: "drop the ! (match from src <" + name + "> … action \"relay\")"})
		default:
			relaysFor = true
		}
	}
	if !relaysFor {
		out = append(out, postfix.Finding{ID: "opensmtpd-conf", Problem: true,
			Msg: fmt.Sprintf("%s has no match from src <%s> … action rule: granted clients cannot relay", conf, name),
			Fix: "add: match from src <" + name + "> for any action \"relay\" (before any rule that rejects them)"})
		return out
	}
	return append(out, postfix.Finding{ID: "opensmtpd-conf", Msg: fmt.Sprintf("%s relays for the table %s (%s)", conf, name, c.OpenSMTPDTable)})
}
