package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relaygate/relaygate/internal/daemon"
	"github.com/relaygate/relaygate/parsers"
)

// TestDovecotLogFormatOption: -dovecot-log-format and the rules file's
// dovecot_log_format change the grammar Dovecot lines are read by, are
// checked before anything runs, and cannot disagree.
func TestDovecotLogFormatOption(t *testing.T) {
	const reordered = "rip=%r user=<%u> lip=%l method=%m session=<%{session}>"
	line := "Jun  2 08:00:00 mx1 dovecot: imap-login: Login: rip=203.0.113.9, user=<frank>, lip=203.0.113.5, method=PLAIN, session=<q1>\n"
	parse := func(args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"parse"}, args...), strings.NewReader(line), &out, &errOut)
		return out.String(), errOut.String(), code
	}
	if out, _, _ := parse(); strings.Contains(out, "203.0.113.9") {
		t.Errorf("default format granted a reordered line: %s", out)
	}
	if out, errOut, code := parse("-dovecot-log-format", reordered); code != 0 || !strings.Contains(out, `"addr":"203.0.113.9"`) {
		t.Errorf("with the site's format: exit %d, %s %s", code, out, errOut)
	}
	if _, errOut, code := parse("-dovecot-log-format", "user=<%u> method=%m"); code == 0 || !strings.Contains(errOut, "-dovecot-log-format") {
		t.Errorf("a format without %%r: exit %d, %s", code, errOut)
	}

	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte("dovecot_log_format: "+reordered+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := parse("-rules", rules); code != 0 || !strings.Contains(out, `"addr":"203.0.113.9"`) {
		t.Errorf("format from the rules file: exit %d, %s %s", code, out, errOut)
	}
	if _, errOut, code := parse("-rules", rules, "-dovecot-log-format", parsers.DefaultDovecotLogFormat); code == 0 || !strings.Contains(errOut, "differ") {
		t.Errorf("two different formats: exit %d, %s", code, errOut)
	}
	if err := os.WriteFile(rules, []byte("dovecot_log_format: \"user=<%u> rip=%r %x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := daemon.BuildParsers(daemon.ParserConfig{Daemons: "all", Rules: rules}); err == nil || !strings.Contains(err.Error(), "dovecot_log_format") {
		t.Errorf("a bad format in the rules file (as SIGHUP rereads it): %v", err)
	}
}
