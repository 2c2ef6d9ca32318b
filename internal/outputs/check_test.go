package outputs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relaygate/relaygate/internal/postfix"
)

func findings(fs []postfix.Finding) map[string]string {
	m := map[string]string{}
	for _, f := range fs {
		m[f.ID] += f.String() + "\n"
	}
	return m
}

func write(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckTCPRules(t *testing.T) {
	dir := t.TempDir()
	static := write(t, dir, "tcp.smtp", "127.:allow,RELAYCLIENT=\"\"\n:allow,RELAYCLIENT=\"\"\n")
	got := findings(Check(Config{TCPRules: filepath.Join(dir, "x.cdb"), TCPRulesStatic: static, TCPRulesGrant: `allow,RBLSMTPD=""`}, CheckOptions{EximConfigs: []string{}}))
	if !strings.Contains(got["tcprules-open-relay"], "PROBLEM") || !strings.Contains(got["tcprules-grant"], "does not set RELAYCLIENT") ||
		!strings.HasPrefix(got["tcprules-dir"], "ok:") {
		t.Errorf("%v", got)
	}
	write(t, dir, "tcp.smtp", "127.:allow RELAYCLIENT\n")
	got = findings(Check(Config{TCPRules: filepath.Join(dir, "x.cdb"), TCPRulesStatic: static}, CheckOptions{EximConfigs: []string{}}))
	if !strings.Contains(got["tcprules-static"], "line 1") {
		t.Errorf("%v", got)
	}
}

func TestCheckSendmail(t *testing.T) {
	dir := t.TempDir()
	cf := write(t, dir, "sendmail.cf", "Kother hash /etc/mail/other\n")
	c := Config{SendmailMap: "/var/lib/relaygate/sendmail-relay"}
	got := findings(Check(c, CheckOptions{SendmailCF: cf, EximConfigs: []string{}}))
	if !strings.Contains(got["sendmail-cf"], "declares no map") {
		t.Errorf("%v", got)
	}
	write(t, dir, "sendmail.cf", "Krelaygate btree -o -a<OK> /var/lib/relaygate/sendmail-relay\n")
	if got = findings(Check(c, CheckOptions{SendmailCF: cf, EximConfigs: []string{}})); !strings.Contains(got["sendmail-cf"], "as btree") {
		t.Errorf("%v", got)
	}
	write(t, dir, "sendmail.cf", "Krelaygate hash -o -a<OK> /var/lib/relaygate/sendmail-relay\n")
	if got = findings(Check(c, CheckOptions{SendmailCF: cf, EximConfigs: []string{}})); !strings.Contains(got["sendmail-cf"], "no rule looks it up") {
		t.Errorf("%v", got)
	}
	write(t, dir, "sendmail.cf", "Krelaygate hash -o -a<OK> /var/lib/relaygate/sendmail-relay\nSLocal_check_rcpt\nR$*\t$: $1 $| $(relaygate $&{client_addr} $: <?> $)\n")
	if got = findings(Check(c, CheckOptions{SendmailCF: cf, EximConfigs: []string{}})); !strings.HasPrefix(got["sendmail-cf"], "ok:") {
		t.Errorf("%v", got)
	}
}

func TestCheckOpenSMTPD(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "relay")
	conf := write(t, dir, "smtpd.conf", "table relaygate file:"+table+"\naction \"relay\" relay\n")
	c := Config{OpenSMTPDTable: table}
	got := findings(Check(c, CheckOptions{SMTPDConf: conf, RunAs: "relaygate", EximConfigs: []string{}}))
	if !strings.Contains(got["opensmtpd-update"], "needs root") || !strings.Contains(got["opensmtpd-conf"], "no match from src <relaygate>") {
		t.Errorf("%v", got)
	}
	write(t, dir, "smtpd.conf", "table relay file:"+table+"\nmatch from src <relay> for any action \"relay\"\n")
	got = findings(Check(c, CheckOptions{SMTPDConf: conf, RunAs: "root", EximConfigs: []string{}}))
	if !strings.Contains(got["opensmtpd-update"], "updates the table relaygate") || !strings.HasPrefix(got["opensmtpd-conf"], "ok:") {
		t.Errorf("%v", got)
	}
}

func TestCheckExim(t *testing.T) {
	dir := t.TempDir()
	m := "/var/lib/relaygate/pop-before-smtp.cdb"
	conf := write(t, dir, "exim4.conf", "accept condition = ${lookup{$sender_host_address}cdb{/var/lib/relaygate/pop-before-smtp}{yes}{no}}\n")
	got := findings(Check(Config{}, CheckOptions{MapPath: m, EximConfigs: []string{conf}}))
	if !strings.Contains(got["exim-lookup"], "adds no .cdb") {
		t.Errorf("%v", got)
	}
	example, _ := os.ReadFile("../../examples/exim-relaygate.conf")
	conf = write(t, dir, "exim4.conf", string(example))
	if got = findings(Check(Config{}, CheckOptions{MapPath: m, EximConfigs: []string{dir}})); !strings.HasPrefix(got["exim-lookup"], "ok:") {
		t.Errorf("the shipped example: %v", got)
	}
	write(t, dir, "exim4.conf", "acl_smtp_rcpt = acl_check_rcpt\n")
	if got = findings(Check(Config{}, CheckOptions{MapPath: m, EximConfigs: []string{conf}})); !strings.HasPrefix(got["exim-lookup"], "note:") {
		t.Errorf("%v", got)
	}
	if got := Check(Config{}, CheckOptions{MapPath: m, EximConfigs: []string{filepath.Join(dir, "none")}}); len(got) != 0 {
		t.Errorf("no Exim here: %v", got)
	}
}

// TestCheckOpenRelayRanges: static rules whose ranges let most of the
// Internet relay are open relays as surely as ":allow,RELAYCLIENT".
func TestCheckOpenRelayRanges(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		rules string
		open  bool
	}{
		{"127.:allow,RELAYCLIENT=\"\"\n10.:allow,RELAYCLIENT=\"\"\n192.168.:allow,RELAYCLIENT=\"\"\n198.51.100.:allow,RELAYCLIENT=\"\"\n:allow\n", false},
		{"1-255.:allow,RELAYCLIENT=\"\"\n:allow\n", true},
		{"0-255.:allow,RELAYCLIENT=\"\"\n", true},
		{"1-255.:allow,RELAYCLIENT=\"\"\n1-255.:deny\n", true},                // the first record of a key wins
		{"1-255.:deny\n1-255.:allow,RELAYCLIENT=\"\"\n", false},               // likewise
		{"80.:allow,RELAYCLIENT=\"\"\n", true},                                // a whole public /8
		{"80.1.:allow,RELAYCLIENT=\"\"\n", false},                             // a /16: a big customer network, not flagged
		{"80.:allow,RBLSMTPD=\"\",RELAYCLIENT=\"\"\n80.0-255.:deny\n", false}, // every /16 under it denied
		{"2001:db8::allow,RELAYCLIENT=\"\"\n", true},                          // 2001:db8: is a /32
		{"2001:db8:1::allow,RELAYCLIENT=\"\"\n", false},
		{"::allow,RELAYCLIENT=\"\"\n", true}, // ":" : every address written with a leading "::"
	} {
		static := write(t, dir, "tcp.smtp", c.rules)
		got := findings(Check(Config{TCPRules: filepath.Join(dir, "x.cdb"), TCPRulesStatic: static}, CheckOptions{EximConfigs: []string{}}))
		if open := strings.Contains(got["tcprules-open-relay"], "PROBLEM"); open != c.open {
			t.Errorf("%q: open relay %v, want %v: %v", c.rules, open, c.open, got)
		}
	}
}

// TestCheckStaticWritableByOthers: a static file anyone can write gives
// anyone RELAYCLIENT.
func TestCheckStaticWritableByOthers(t *testing.T) {
	dir := t.TempDir()
	static := write(t, dir, "tcp.smtp", "127.:allow,RELAYCLIENT=\"\"\n")
	cfg := Config{TCPRules: filepath.Join(dir, "x.cdb"), TCPRulesStatic: static}
	if got := findings(Check(cfg, CheckOptions{EximConfigs: []string{}})); got["tcprules-static-mode"] != "" {
		t.Errorf("0644: %v", got)
	}
	os.Chmod(static, 0o666)
	if got := findings(Check(cfg, CheckOptions{EximConfigs: []string{}})); !strings.Contains(got["tcprules-static-mode"], "PROBLEM") {
		t.Errorf("0666: %v", got)
	}
	os.Chmod(static, 0o644)
	os.Chmod(dir, 0o777)
	defer os.Chmod(dir, 0o755)
	if got := findings(Check(cfg, CheckOptions{EximConfigs: []string{}})); !strings.Contains(got["tcprules-static-mode"], "PROBLEM") {
		t.Errorf("in a world-writable directory: %v", got)
	}
}

// TestCheckOpenSMTPDNegated: "match ! from src <relaygate>" relays for
// every client that is not granted.
func TestCheckOpenSMTPDNegated(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "relay")
	conf := write(t, dir, "smtpd.conf", "table relaygate file:"+table+"\nmatch ! from src <relaygate> for any action \"relay\"\n")
	got := findings(Check(Config{OpenSMTPDTable: table}, CheckOptions{SMTPDConf: conf, RunAs: "root", EximConfigs: []string{}}))
	if !strings.Contains(got["opensmtpd-negated"], "PROBLEM") || !strings.Contains(got["opensmtpd-conf"], "PROBLEM") {
		t.Errorf("%v", got)
	}
	write(t, dir, "smtpd.conf", "table relaygate file:"+table+"\nmatch from src <relaygate> for any action \"relay\"\nmatch !from src <relaygate> for local action \"local\"\n")
	got = findings(Check(Config{OpenSMTPDTable: table}, CheckOptions{SMTPDConf: conf, RunAs: "root", EximConfigs: []string{}}))
	if !strings.Contains(got["opensmtpd-negated"], "PROBLEM") || !strings.HasPrefix(got["opensmtpd-conf"], "ok:") {
		t.Errorf("%v", got)
	}
}

// TestConfigCheckCollisions: an output on the map, the state, their lock
// files, or the same file through a symbolic link, is refused.
func TestConfigCheckCollisions(t *testing.T) {
	dir := t.TempDir()
	m, state := filepath.Join(dir, "pbs.cdb"), filepath.Join(dir, "pbs.state")
	write(t, dir, "pbs.cdb", "")
	os.Mkdir(filepath.Join(dir, "real"), 0o755)
	os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "link"))
	os.Symlink(m, filepath.Join(dir, "alias.cdb"))
	for _, c := range []Config{
		{TCPRules: m + ".lock"},
		{TCPRules: state + ".lock"},
		{OpenSMTPDTable: m + ".takeover.lock"},
		{TCPRules: filepath.Join(dir, "alias.cdb")}, // a link to the map
		{TCPRules: filepath.Join(dir, "link", "t.cdb"), OpenSMTPDTable: filepath.Join(dir, "real", "t.cdb")}, // one file, two names
		{SendmailMap: filepath.Join(dir, "link", "x"), TCPRules: filepath.Join(dir, "real", "x.db")},
		{TCPRules: filepath.Join(dir, "t.cdb"), TCPRulesGrant: "deny"},
	} {
		if err := c.Check(m, state); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
	ok := Config{TCPRules: filepath.Join(dir, "link", "t.cdb"), OpenSMTPDTable: filepath.Join(dir, "real", "table")}
	if err := ok.Check(m, state); err != nil {
		t.Errorf("distinct files refused: %v", err)
	}
}
