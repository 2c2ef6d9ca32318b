package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParseCommandForms(t *testing.T) {
	in := strings.Join([]string{
		"<22>Nov 21 10:00:00 mx1 dovecot[812]: pop3-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1",
		"Nov 21 10:00:01 mx1 sshd[1]: Accepted password for bob from 192.0.2.11 port 2222 ssh2",
		"Nov 21 10:00:02 mx1 imapd-ssl: LOGIN, user=bob, ip=[::ffff:192.0.2.12], port=[1], protocol=IMAP",
		"<22>1 2026-11-21T10:00:03Z mx1 imap 5 - - login: mail.example.net [2001:DB8::7] carol PLAIN User logged in",
		"",
		"<22>Nov 21 10:00:04 mx1 dovecot: imap-login: Aborted login (auth failed, 1 attempts in 2 secs): user=<eve>, rip=192.0.2.66",
		"<13>",
		"Nov 21 10:00:05 mx1 ipop3d[4]: Login user=dave host=[198.51.100.1] nmsgs=0/0",
	}, "\n")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"parse"}, strings.NewReader(in), &out, &errOut); code != 0 {
		t.Fatalf("parse exit %d: %s", code, errOut.String())
	}
	want := `{"line":1,"kind":"login","addr":"192.0.2.10","user":"alice","daemon":"dovecot"}
{"line":3,"kind":"login","addr":"192.0.2.12","user":"bob","daemon":"courier","session":"192.0.2.12/1"}
{"line":4,"kind":"login","addr":"2001:db8::7","user":"carol","daemon":"cyrus"}
{"line":8,"kind":"login","addr":"198.51.100.1","user":"dave","daemon":"uw","session":"mx1/ipop3d[4]"}
`
	if out.String() != want {
		t.Errorf("parse output\n%s\nwant\n%s", out.String(), want)
	}
	if !strings.Contains(errOut.String(), "8 lines, 4 events") {
		t.Errorf("summary = %q", errOut.String())
	}
}

// TestParseCommandAgreesWithGolden runs the fixture logs through the full
// path the daemon uses (envelope, then parsers) and checks it finds exactly
// the logins the parser-level golden files list, on the same lines.
func TestParseCommandAgreesWithGolden(t *testing.T) {
	logs, _ := filepath.Glob("../../testdata/parsers/*.log")
	if len(logs) == 0 {
		t.Fatal("no fixtures found")
	}
	for _, log := range logs {
		golden, err := os.ReadFile(strings.TrimSuffix(log, ".log") + ".golden")
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, l := range strings.Split(string(golden), "\n") {
			f := strings.Split(l, "\t")
			if len(f) >= 5 && (f[1] == "login" || f[1] == "logout") {
				addr := f[2]
				if addr == "-" {
					addr = ""
				}
				want = append(want, f[0]+" "+f[1]+" "+addr)
			}
		}
		var out bytes.Buffer
		if code := run(context.Background(), []string{"parse", log}, nil, &out, &bytes.Buffer{}); code != 0 {
			t.Fatalf("parse %s: exit %d", log, code)
		}
		var got []string
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			var ev parsedEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatal(err)
			}
			got = append(got, strconv.Itoa(ev.Line)+" "+ev.Kind+" "+ev.Addr)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: relaygate parse found\n  %v\nthe golden file lists\n  %v", filepath.Base(log), got, want)
		}
	}
}

func TestParseExplain(t *testing.T) {
	in := strings.Join([]string{
		"Nov 21 10:00:00 mx1 dovecot[812]: pop3-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1, session=<S1>",
		"Nov 21 10:00:01 mx1 sshd[1]: Accepted password for bob from 192.0.2.11 port 2222 ssh2",
		"Nov 21 10:00:02 mx1 dovecot[812]: imap-login: Aborted login (auth failed, 1 attempts in 2 secs): user=<eve>, rip=192.0.2.66",
		"Nov 21 10:00:03 mx1 dovecot[812]: imap-login: Login: user=<mallory>, method=PLAIN, rip=0.0.0.0, lip=192.0.2.1",
		"Nov 21 10:00:04 mx1 popa3d[77]: Session from 198.51.100.9",
		"Nov 21 10:00:05 mx1 popa3d[77]: Authentication passed for carol",
		"Nov 21 10:00:06 mx1 dovecot[900]: pop3(alice)<900><S1>: Disconnected: Logged out top=0/0",
		"just some text",
		"Nov 21 10:00:07 mx1 mypop3d[5]: auth ok: user=dave client=192.0.2.44 conn=1",
	}, "\n")
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"parse", "-explain", "-rules", "../../examples/rules.yaml"}, strings.NewReader(in), &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	got := out.String()
	for _, want := range []string{
		`1: dovecot[812] (dovecot): login 192.0.2.10 user="alice" session="S1"`,
		`2: sshd[1]: no parser handles program "sshd"`,
		`3: dovecot[812]: dovecot: not a login or logout line`,
		`4: dovecot[812]: dovecot: login refused, address "0.0.0.0": unspecified address`,
		`5: popa3d[77] (popa3d): remembered 198.51.100.9`,
		`6: popa3d[77] (popa3d): login 198.51.100.9 user="carol"`,
		`7: dovecot[900] (dovecot): logout user="alice" session="S1"`,
		`8: no program tag could be read`,
		`9: mypop3d[5] (mypop): login 192.0.2.44 user="dave" session="1"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("explain output lacks %q\n%s", want, got)
		}
	}
}

func TestParseFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"parse", "-daemons", "dovecot,nosuchd"},
		{"parse", "-rules", "/nonexistent/rules.yaml"},
		{"parse", "-daemons", "none"},
	} {
		var errOut bytes.Buffer
		if code := run(context.Background(), args, strings.NewReader(""), &bytes.Buffer{}, &errOut); code == 0 || errOut.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q; want an error", args, code, errOut.String())
		}
	}
}
