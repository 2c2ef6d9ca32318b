package daemon

import (
	"testing"

	"github.com/relaygate/relaygate/internal/origin"
)

// examples/origin.yaml loads as -origin-file does (against the default
// parsers' daemon names), and pins Dovecot as SECURITY.md says: its log
// process as root grants; a system account's PHP, root's logger and a
// login user do not.
func TestExampleOriginFile(t *testing.T) {
	set, err := BuildParsers(testConfig(t).Parsers)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loadOriginPolicy(OriginConfig{Mode: origin.ModeRequire, File: "../../examples/origin.yaml", LoginDefs: "/nonexistent"}, set)
	if err != nil {
		t.Fatal(err)
	}
	pin, ok := p.Pins["dovecot"]
	if !ok || len(pin.UIDs) != 1 || pin.UIDs[0] != 0 || len(pin.Exes) != 1 || pin.Exes[0] != "/usr/lib/dovecot/log" || len(pin.Units)+len(pin.Comms) != 0 {
		t.Fatalf("dovecot pin %+v", pin)
	}
	for _, tc := range []struct {
		name   string
		o      origin.Origin
		reason string
	}{
		{"Dovecot's log process (rsyslog)", origin.Origin{UID: 0, GID: 0, PID: 812, Exe: "/usr/lib/dovecot/log", Comm: "log"}, ""},
		{"Dovecot's log process (journal, systemd)", origin.Origin{UID: 0, GID: 0, PID: 812, Exe: "/usr/lib/dovecot/log", Comm: "log", Unit: "dovecot.service"}, ""},
		{"www-data's PHP", origin.Origin{UID: 33, GID: 33, PID: 9, Exe: "/usr/sbin/php-fpm8.2", Comm: "php-fpm8.2"}, origin.ReasonUID},
		{"root's logger", origin.Origin{UID: 0, GID: 0, PID: 9, Exe: "/usr/bin/logger", Comm: "logger"}, origin.ReasonExe},
		{"root's logger, exited before /proc was read", origin.Origin{UID: 0, GID: 0, PID: 9, Comm: "logger"}, origin.ReasonExe},
		{"a login user", origin.Origin{UID: 1000, GID: 1000, PID: 9, Exe: "/usr/lib/dovecot/log", Comm: "log"}, origin.ReasonUID},
	} {
		ok, reason := p.Check("dovecot", origin.Verify(tc.o))
		if ok != (tc.reason == "") || reason != tc.reason {
			t.Errorf("%s: ok %v reason %q, want %q", tc.name, ok, reason, tc.reason)
		}
	}
	// Other daemons keep the default rule.
	if ok, _ := p.Check("courier", origin.Verify(origin.Origin{UID: 0, GID: 0, PID: 1})); !ok {
		t.Error("an unpinned daemon's root line refused")
	}
}
