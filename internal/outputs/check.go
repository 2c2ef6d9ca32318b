package outputs

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/relaygate/relaygate/internal/postfix"
)

// CheckOptions is what `relaygate check` knows of the host besides the
// outputs' flags; empty fields take the Debian locations.
type CheckOptions struct {
	MapPath     string   // relaygate's Postfix map, with .cdb (Exim reads it)
	RunAs       string   // the user relaygate runs as; "" is the current user
	SendmailCF  string   // default /etc/mail/sendmail.cf
	SMTPDConf   string   // default /etc/smtpd.conf
	EximConfigs []string // default Debian's split and unsplit files (eximConfigs)
	// CourierEsmtpd is Courier's esmtpd configuration, default
	// /etc/courier/esmtpd.
	CourierEsmtpd string
}

// Check reports the setup mistakes that make an output silently useless
// or dangerous: a directory relaygate cannot write, a static tcprules file
// that fails or makes an open relay, grant instructions without
// RELAYCLIENT, a sendmail.cf or smtpd.conf that does not consult the file
// relaygate writes, a table update or a Courier restart that needs root,
// Courier site rules that relaygate would drop, and an Exim that looks
// the map up in a form that never matches.
func Check(c Config, o CheckOptions) []postfix.Finding {
	var out []postfix.Finding
	if c.TCPRules != "" {
		out = append(out, checkDir("tcprules", c.TCPRules))
		out = append(out, checkTCPRules(c)...)
	}
	if c.SendmailMap != "" {
		out = append(out, checkDir("sendmail", sendmailDB(c.SendmailMap)))
		out = append(out, checkSendmail(c, o)...)
	}
	if c.OpenSMTPDTable != "" {
		out = append(out, checkDir("opensmtpd", c.OpenSMTPDTable))
		out = append(out, checkOpenSMTPD(c, o)...)
	}
	if c.CourierSmtpaccess != "" {
		out = append(out, checkDir("courier", c.CourierSmtpaccess))
		out = append(out, checkCourier(c, o)...)
	}
	return append(out, checkExim(o)...)
}

func checkDir(kind, path string) postfix.Finding {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".relaygate-check-*")
	if err != nil {
		return postfix.Finding{ID: kind + "-dir", Problem: true,
			Msg: fmt.Sprintf("%s output: cannot create files in %s: %v", kind, dir, err),
			Fix: fmt.Sprintf("let the user relaygate runs as write %s (it writes a temporary file there and renames it over %s)", dir, filepath.Base(path))}
	}
	f.Close()
	os.Remove(f.Name())
	return postfix.Finding{ID: kind + "-dir", Msg: fmt.Sprintf("%s output directory %s is writable", kind, dir)}
}
