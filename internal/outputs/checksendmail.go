package outputs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/relaygate/relaygate/internal/postfix"
)

// kLine is a sendmail.cf map declaration: Kname class [flags] file.
var kLine = regexp.MustCompile(`^K(\S+)\s+(\S+)\s+(.*)$`)

func checkSendmail(c Config, o CheckOptions) []postfix.Finding {
	var out []postfix.Finding
	if _, err := findMakemap(); err != nil {
		out = append(out, postfix.Finding{ID: "sendmail-makemap", Problem: true, Msg: err.Error(),
			Fix: "install sendmail's makemap (apt-get install sendmail-bin)"})
	}
	cf := o.SendmailCF
	if cf == "" {
		cf = "/etc/mail/sendmail.cf"
	}
	b, err := os.ReadFile(cf)
	if err != nil {
		return append(out, postfix.Finding{ID: "sendmail-cf", Problem: true, Msg: err.Error(),
			Fix: "build sendmail.cf with examples/sendmail-relaygate.mc's lines, or check another host's file by hand"})
	}
	var mapName, class string
	lines := bufio.NewScanner(bytes.NewReader(b))
	lines.Buffer(nil, 1<<20)
	for lines.Scan() {
		m := kLine.FindStringSubmatch(lines.Text())
		if m == nil {
			continue
		}
		f := strings.Fields(m[3])
		if len(f) > 0 && strings.TrimSuffix(f[len(f)-1], ".db") == c.SendmailMap {
			mapName, class = m[1], m[2]
		}
	}
	switch {
	case mapName == "":
		return append(out, postfix.Finding{ID: "sendmail-cf", Problem: true,
			Msg: fmt.Sprintf("%s declares no map on %s: sendmail never reads the grants", cf, c.SendmailMap),
			Fix: "add examples/sendmail-relaygate.mc's LOCAL_CONFIG and LOCAL_RULESETS to sendmail.mc with this file, and rebuild sendmail.cf"})
	case class != "hash":
		out = append(out, postfix.Finding{ID: "sendmail-cf", Problem: true,
			Msg: fmt.Sprintf("%s declares the map %s as %s: relaygate writes a hash map", cf, mapName, class),
			Fix: "declare it K" + mapName + " hash …"})
	case !bytes.Contains(b, []byte("$("+mapName+" ")):
		out = append(out, postfix.Finding{ID: "sendmail-cf", Problem: true,
			Msg: fmt.Sprintf("%s declares the map %s but no rule looks it up", cf, mapName),
			Fix: "add examples/sendmail-relaygate.mc's LOCAL_RULESETS (Local_check_rcpt) and rebuild sendmail.cf"})
	default:
		out = append(out, postfix.Finding{ID: "sendmail-cf", Msg: fmt.Sprintf("%s looks granted clients up in the map %s (%s)", cf, mapName, sendmailDB(c.SendmailMap))})
	}
	return out
}
