package postfix

import (
	"strings"
	"testing"
)

func TestParsePrefixes(t *testing.T) {
	got, err := ParsePrefixes("127.0.0.0/8 [::ffff:127.0.0.0]/104, [::1]/128,192.0.2.7, 2001:db8::/32")
	if err != nil {
		t.Fatal(err)
	}
	want := "127.0.0.0/8 127.0.0.0/8 ::1/128 192.0.2.7/32 2001:db8::/32"
	if s := JoinPrefixes(got); strings.ReplaceAll(s, ",", " ") != want {
		t.Errorf("ParsePrefixes = %s, want %s", s, want)
	}
	res, err := parseMynetworks("127.0.0.0/8, hash:/etc/postfix/net, cafe::/16, !192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if JoinPrefixes(res.Prefixes) != "127.0.0.0/8,cafe::/16" || len(res.Ignored) != 2 {
		t.Errorf("mynetworks = %v ignored %v", res.Prefixes, res.Ignored)
	}
}
