package origin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func params(kv ...string) []Param {
	var ps []Param
	for i := 0; i+1 < len(kv); i += 2 {
		ps = append(ps, Param{Name: kv[i], Value: kv[i+1]})
	}
	return ps
}

func TestParseElement(t *testing.T) {
	cases := []struct {
		name    string
		params  []Param
		want    Origin
		wantErr string
	}{
		{"rsyslog root", params("uid", "0", "gid", "0", "pid", "10", "exe", "/usr/bin/logger", "appname", "logger"),
			Origin{UID: 0, GID: 0, PID: 10, Exe: "/usr/bin/logger", Comm: "logger"}, ""},
		{"rsyslog nobody, no exe", params("uid", "65534", "gid", "65534", "pid", "14", "exe", "", "appname", "logger"),
			Origin{UID: 65534, GID: 65534, PID: 14, Comm: "logger"}, ""},
		{"journal", params("uid", "0", "comm", "log", "unit", "dovecot.service"),
			Origin{UID: 0, GID: -1, PID: -1, Comm: "log", Unit: "dovecot.service"}, ""},
		{"no uid", params("gid", "0"), Unknown, "no uid"},
		{"empty uid", params("uid", ""), Unknown, "no uid"},
		{"negative uid", params("uid", "-1"), Unknown, "not a decimal"},
		{"signed uid", params("uid", "+0"), Unknown, "not a decimal"},
		{"hex uid", params("uid", "0x0"), Unknown, "not a decimal"},
		{"spaced uid", params("uid", " 0"), Unknown, "not a decimal"},
		{"huge uid", params("uid", "4294967296"), Unknown, "out of range"},
		{"long uid", params("uid", "00000000000"), Unknown, "too long"},
		{"uid twice", params("uid", "0", "uid", "1000"), Unknown, "twice"},
		{"comm and appname", params("uid", "0", "comm", "a", "appname", "b"), Unknown, "twice"},
		{"unknown param", params("uid", "0", "trusted", "yes"), Unknown, "unknown parameter"},
		{"control in exe", params("uid", "0", "exe", "/usr/bin/x\nuid=0"), Unknown, "control character"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseElement(c.params)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	root := params("uid", "0", "pid", "1")
	cases := []struct {
		name    string
		present bool
		params  []Param
		trusted bool
		text    string
		want    State
	}{
		{"plain", false, nil, false, "imap-login: Login: user=<a>", None},
		{"trusted element", true, root, true, "imap-login: Login", Verified},
		{"untrusted element", true, root, false, "imap-login: Login", Untrusted},
		{"malformed element", true, params("uid", "x"), true, "imap-login: Login", Malformed},
		{"forged in text, no element", false, nil, true, `[relaygate@32473 uid="0"] imap-login: Login`, InText},
		{"forged in text, real element", true, root, true, `imap-login: Login: user=<[relaygate@32473 uid="0"]>`, InText},
		{"forged in text, other case", false, nil, true, `x [RelayGate@32473 uid="0"]`, InText},
		{"bracket elsewhere", false, nil, true, `imap-login: Login: user=<[a]>, [relaygate@3247`, None},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Judge(c.present, c.params, c.trusted, c.text, DefaultSDID)
			if got.State() != c.want {
				t.Fatalf("state %v, want %v", got.State(), c.want)
			}
			if got.State() != Verified && got.Origin() != Unknown {
				t.Fatalf("origin %+v carried by a %v claim", got.Origin(), got.State())
			}
		})
	}
}

func TestCheck(t *testing.T) {
	verified := func(uid int64, unit, exe, comm string) Claim {
		return Verify(Origin{UID: uid, GID: -1, PID: -1, Unit: unit, Exe: exe, Comm: comm})
	}
	pins := map[string]Pin{
		"dovecot": {Units: []string{"dovecot.service"}, Exes: []string{"/usr/lib/dovecot/log"}},
		"courier": {UIDs: []int64{5000}},
		"cyrus":   {Comms: []string{"imapd", "pop3d"}},
	}
	cases := []struct {
		name   string
		mode   Mode
		daemon string
		claim  Claim
		ok     bool
		reason string
	}{
		{"verify none", ModeVerify, "uw", Claim{}, true, ""},
		{"require none", ModeRequire, "uw", Claim{}, false, ReasonNoOrigin},
		{"off untrusted", ModeOff, "uw", Refuse(Untrusted), true, ""},
		{"verify untrusted", ModeVerify, "uw", Refuse(Untrusted), false, ReasonUntrusted},
		{"verify malformed", ModeVerify, "uw", Refuse(Malformed), false, ReasonMalformed},
		{"verify in text", ModeVerify, "uw", Refuse(InText), false, ReasonInText},
		{"unknown state", ModeVerify, "uw", Claim{state: State(99)}, false, ReasonMalformed},
		{"root", ModeRequire, "uw", verified(0, "", "", ""), true, ""},
		{"system account", ModeRequire, "uw", verified(999, "", "", ""), true, ""},
		{"first login uid", ModeRequire, "uw", verified(1000, "", "", ""), false, ReasonLoginUser},
		{"nobody", ModeVerify, "uw", verified(65534, "", "", ""), false, ReasonLoginUser},
		{"uid unknown", ModeVerify, "uw", verified(-1, "", "", ""), false, ReasonMalformed},
		{"zero claim", ModeRequire, "uw", Claim{}, false, ReasonNoOrigin},
		{"pinned unit and exe", ModeRequire, "dovecot", verified(0, "dovecot.service", "/usr/lib/dovecot/log", "log"), true, ""},
		{"pinned unit wrong", ModeRequire, "dovecot", verified(0, "user@1000.service", "/usr/lib/dovecot/log", "log"), false, ReasonUnit},
		{"pinned exe wrong", ModeRequire, "dovecot", verified(0, "dovecot.service", "/usr/bin/logger", "logger"), false, ReasonExe},
		{"pinned, login uid still refused", ModeRequire, "dovecot", verified(1000, "dovecot.service", "/usr/lib/dovecot/log", "log"), false, ReasonLoginUser},
		{"pinned uid allows a login-range uid", ModeRequire, "courier", verified(5000, "", "", ""), true, ""},
		{"pinned uid refuses root", ModeRequire, "courier", verified(0, "", "", ""), false, ReasonUID},
		{"pinned comm", ModeRequire, "cyrus", verified(100, "", "", "pop3d"), true, ""},
		{"pinned comm wrong", ModeRequire, "cyrus", verified(100, "", "", "logger"), false, ReasonComm},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := Policy{Mode: c.mode, UIDMin: 1000, Pins: pins}
			ok, reason := p.Check(c.daemon, c.claim)
			if ok != c.ok || reason != c.reason {
				t.Fatalf("Check = %v %q, want %v %q", ok, reason, c.ok, c.reason)
			}
		})
	}
	var zero Policy
	if ok, _ := zero.Check("uw", verified(0, "", "", "")); !ok {
		t.Fatal("the zero Policy refuses root")
	}
	if ok, _ := zero.Check("uw", verified(DefaultUIDMin, "", "", "")); ok {
		t.Fatal("the zero Policy allows a login user")
	}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"off", "verify", "require"} {
		m, err := ParseMode(s)
		if err != nil || m.String() != s {
			t.Fatalf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseMode("on"); err == nil || !strings.Contains(err.Error(), "-origin") {
		t.Fatalf("ParseMode(on): %v", err)
	}
}

func TestLoadUIDMin(t *testing.T) {
	dir := t.TempDir()
	write := func(content string) string {
		p := filepath.Join(dir, "login.defs")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if v, err := LoadUIDMin(filepath.Join(dir, "missing")); err != nil || v != DefaultUIDMin {
		t.Fatalf("missing: %d %v", v, err)
	}
	if v, err := LoadUIDMin(write("# UID_MIN 5\nUID_MAX 60000\n\tUID_MIN\t\t 500\n")); err != nil || v != 500 {
		t.Fatalf("set: %d %v", v, err)
	}
	if v, err := LoadUIDMin(write("UID_MAX 60000\n")); err != nil || v != DefaultUIDMin {
		t.Fatalf("unset: %d %v", v, err)
	}
	if _, err := LoadUIDMin(write("UID_MIN lots\n")); err == nil || !strings.Contains(err.Error(), ":1: UID_MIN") {
		t.Fatalf("bad: %v", err)
	}
	// As shadow-utils reads it (found by an attack round: relaygate read
	// 01750 as 1750 where useradd reads 1000, and took the first of two
	// lines where useradd takes the last).
	for content, want := range map[string]int64{
		"UID_MIN 01750\n":                 1000,
		"UID_MIN 0x3e8\n":                 1000,
		"UID_MIN \"1000\"\n":              1000,
		"UID_MIN 5000\nUID_MIN 1000\n":    1000,
		"UID_MIN 1000\n#UID_MIN 9\n":      1000,
		"UID_MIN\t 500 # comment words\n": 500,
	} {
		if v, err := LoadUIDMin(write(content)); err != nil || v != want {
			t.Errorf("%q: %d %v, want %d", content, v, err, want)
		}
	}
	for _, bad := range []string{"UID_MIN 1_000\n", "UID_MIN 08\n", "UID_MIN -5\n", "UID_MIN 0x\n", "UID_MIN 0\n", "UID_MIN 1000\nUID_MIN x\n"} {
		if _, err := LoadUIDMin(write(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseFile(t *testing.T) {
	known := func(s string) bool { return s == "dovecot" || s == "courier" }
	cfg, err := ParseFile([]byte(`
uid_min: 500
daemons:
  dovecot:
    units: [dovecot.service]
    exes: [/usr/lib/dovecot/log]
  courier:
    uids: [0, 5000]
`), known)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.UIDMin != 500 || len(cfg.Pins) != 2 || cfg.Pins["courier"].UIDs[1] != 5000 {
		t.Fatalf("cfg = %+v", cfg)
	}
	_, err = ParseFile([]byte(`
uid_min: 0
daemons:
  postfix:
    uids: [0]
  dovecot:
    exes: [log]
    units: [""]
  courier: {}
`), known)
	for _, want := range []string{"uid_min 0", `"postfix" is not a daemon`, `exe "log" is not an absolute path`, `"" is empty`, "courier: pins nothing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	if _, err := ParseFile([]byte("daemon:\n  dovecot: {}\n"), known); err == nil || !strings.Contains(err.Error(), "daemon") {
		t.Errorf("unknown key accepted: %v", err)
	}
	if cfg, err := ParseFile(nil, known); err != nil || len(cfg.Pins) != 0 {
		t.Errorf("empty file: %+v %v", cfg, err)
	}
}

// FuzzJudge holds that a claim never verifies what it should not: an
// element from an untrusted sender, or text that mentions the element, is
// never Verified; a Verified claim always has a uid.
func FuzzJudge(f *testing.F) {
	f.Add("uid", "0", "pid", "1", true, true, "imap-login: Login")
	f.Add("uid", "65534", "appname", "logger", true, true, `[relaygate@32473 uid="0"]`)
	f.Add("gid", "0", "exe", "", true, false, "x")
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string, present, trusted bool, text string) {
		c := Judge(present, []Param{{n1, v1}, {n2, v2}}, trusted, text, DefaultSDID)
		if c.State() == Verified {
			if !present || !trusted || MentionsElement(text, DefaultSDID) || c.Origin().UID < 0 {
				t.Fatalf("verified: %+v (present %v trusted %v text %q)", c, present, trusted, text)
			}
		} else if c.Origin() != Unknown {
			t.Fatalf("%v claim carries %+v", c.State(), c.Origin())
		}
		if strings.Contains(strings.ToLower(text), "[relaygate@32473") && c.State() != InText {
			t.Fatalf("text %q mentions the element, state %v", text, c.State())
		}
	})
}
