package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/colinmarc/cdb"

	"github.com/relaygate/relaygate/internal/outputs"
	"github.com/relaygate/relaygate/internal/testutil"
	"github.com/relaygate/relaygate/internal/testutil/sendtest"
)

// TestBrokenOutputDoesNotStopTheMap: with -tcprules in a read-only
// directory, the Postfix map and the OpenSMTPD table still get every
// grant; the tcprules failures are counted, and the cdb is written once
// the directory is writable again.
func TestBrokenOutputDoesNotStopTheMap(t *testing.T) {
	cfg := testConfig(t)
	ro, rw := t.TempDir(), t.TempDir()
	cfg.Outputs = outputs.Config{TCPRules: filepath.Join(ro, "tcp.smtp.cdb"),
		OpenSMTPDTable: filepath.Join(rw, "relay"), OpenSMTPDUpdate: "true"}
	if err := cfg.Outputs.Check(cfg.MapPath, cfg.StatePath); err != nil {
		t.Fatal(err)
	}
	writable := testutil.ReadOnlyDir(t, ro)
	d, stop := launch(t, cfg)
	sendtest.UDP(t, d.UDPAddr().String(), fmt.Sprintf(dovecotLogin, "192.0.2.10"))
	testutil.Eventually(t, 3*time.Second, "192.0.2.10 in the map", func() bool { return sendtest.InMap(t, cfg.MapPath, "192.0.2.10") })
	testutil.Eventually(t, 3*time.Second, "192.0.2.10 in the OpenSMTPD table", func() bool {
		b, _ := os.ReadFile(filepath.Join(rw, "relay"))
		return strings.Contains(string(b), "\n192.0.2.10\n")
	})
	testutil.Eventually(t, 3*time.Second, "the tcprules failure counted", func() bool {
		return d.logFields()["output_write_errors_tcprules"] != nil && d.logFields()["output_write_errors_tcprules"] != float64(0)
	})
	writable()
	// The retry backs off up to 30 s: a loaded machine that took long for
	// the steps above may wait that long for the next one.
	testutil.Eventually(t, 40*time.Second, "the tcprules cdb once writable", func() bool {
		db, err := cdb.Open(filepath.Join(ro, "tcp.smtp.cdb"))
		if err != nil {
			return false
		}
		defer db.Close()
		v, _ := db.Get([]byte("192.0.2.10"))
		return string(v) == "+RELAYCLIENT=\x00"
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestOutputFlagsChecked: options without their output, and an output on
// the map, are refused before anything starts (Config.Check runs this).
func TestOutputFlagsChecked(t *testing.T) {
	for _, o := range []outputs.Config{
		{TCPRulesStatic: "/etc/tcp.smtp"},
		{OpenSMTPDUpdate: "smtpctl update table x"},
		{TCPRules: "/x/tcp.cdb", TCPRulesGrant: "permit"},
		{SendmailMap: "/etc/mail/relay.db"},
	} {
		cfg := testConfig(t)
		cfg.Outputs = o
		if err := cfg.Outputs.Check(cfg.MapPath, cfg.StatePath); err == nil {
			t.Errorf("%+v: accepted", o)
		}
	}
	cfg := testConfig(t)
	cfg.Outputs.TCPRules = cfg.MapPath
	if err := cfg.Outputs.Check(cfg.MapPath, cfg.StatePath); err == nil || !strings.Contains(err.Error(), "the same file") {
		t.Errorf("-tcprules on the map: %v", err)
	}
}
