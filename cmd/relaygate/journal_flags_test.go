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

// TestJournalTurnsDefaultListenersOff: with -journal the default syslog
// listeners are off (an attack round granted a local user's UDP line beside
// the journal under -origin verify); given explicitly, they stay.
func TestJournalTurnsDefaultListenersOff(t *testing.T) {
	cfg, err := parseServeFlags([]string{"-journal"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.UDP != "" || cfg.TCP != "" {
		t.Errorf("-journal alone listens on udp %q tcp %q", cfg.UDP, cfg.TCP)
	}
	cfg, err = parseServeFlags([]string{"-journal", "-tcp", "127.0.0.1:5514"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.UDP != "" || cfg.TCP != "127.0.0.1:5514" {
		t.Errorf("-journal -tcp: udp %q tcp %q", cfg.UDP, cfg.TCP)
	}
	if cfg, err := parseServeFlags(nil, io.Discard); err != nil || cfg.UDP == "" || cfg.TCP == "" {
		t.Errorf("without -journal the defaults listen: %+v %v", cfg.Config.UDP, err)
	}
}
