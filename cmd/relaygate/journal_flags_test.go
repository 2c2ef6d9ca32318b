package main

import (
	"io"
	"strings"
	"testing"
)

// -journal reads logins without any syslog listener; -journal-dir needs
// -journal.
func TestJournalFlags(t *testing.T) {
	cfg, err := parseServeFlags([]string{"-journal", "-journal-dir", "/run/log/journal", "-udp", "", "-tcp", ""}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Journal.On || cfg.Journal.Dir != "/run/log/journal" || cfg.UDP != "" || cfg.TCP != "" {
		t.Errorf("config %+v", cfg.Journal)
	}
	if _, err := parseServeFlags([]string{"-udp", "", "-tcp", ""}, io.Discard); err == nil || !strings.Contains(err.Error(), "-journal") {
		t.Errorf("no listener, no -journal: %v", err)
	}
	if _, err := parseServeFlags([]string{"-journal-dir", "/x"}, io.Discard); err == nil {
		t.Error("-journal-dir without -journal accepted")
	}
}
