package fleet

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestEventRoundTrip(t *testing.T) {
	at := time.Unix(1_765_000_000, 123456789)
	for _, ev := range []Event{
		{Kind: KindLogin, Addr: netip.MustParseAddr("192.0.2.10"), User: "alice", Daemon: "dovecot", Host: "pop1", At: at},
		{Kind: KindRefresh, Addr: netip.MustParseAddr("2001:db8::25"), At: at},
		{Kind: KindEnd, Addr: netip.MustParseAddr("::ffff:198.51.100.7"), User: `a"b\c ü`, At: at},
	} {
		b := ev.Encode()
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(%s): %v", b, err)
		}
		want := ev
		want.Addr = want.Addr.Unmap()
		if got.Kind != want.Kind || got.Addr != want.Addr || got.User != want.User || got.Daemon != want.Daemon ||
			got.Host != want.Host || !got.At.Equal(want.At) {
			t.Errorf("round trip of %s: got %v, want %v", b, got, want)
		}
	}
}

// TestDecodeRefuses: an event from the stream is untrusted input; each of
// these is refused, never applied.
func TestDecodeRefuses(t *testing.T) {
	const ok = `{"v":1,"k":"login","a":"192.0.2.10","t":1765000000000000000}`
	if _, err := Decode([]byte(ok)); err != nil {
		t.Fatalf("the base case must decode: %v", err)
	}
	for _, c := range []struct{ in, why string }{
		{``, "empty"},
		{`[]`, "not an object"},
		{`{"v":1,"k":"login","a":"192.0.2.10"}`, "no time"},
		{`{"v":1,"k":"login","t":1765000000000000000}`, "no address"},
		{`{"k":"login","a":"192.0.2.10","t":1765000000000000000}`, "no version"},
		{`{"v":2,"k":"login","a":"192.0.2.10","t":1765000000000000000}`, "future version"},
		{`{"v":1,"k":"grant","a":"192.0.2.10","t":1765000000000000000}`, "unknown kind"},
		{`{"v":1,"k":"login","a":"0.0.0.0","t":1765000000000000000}`, "unspecified address"},
		{`{"v":1,"k":"login","a":"224.0.0.1","t":1765000000000000000}`, "multicast"},
		{`{"v":1,"k":"login","a":"255.255.255.255","t":1765000000000000000}`, "broadcast"},
		{`{"v":1,"k":"login","a":"fe80::1%eth0","t":1765000000000000000}`, "zoned link-local"},
		{`{"v":1,"k":"login","a":"192.0.2.0/24","t":1765000000000000000}`, "a network, not an address"},
		{`{"v":1,"k":"login","a":"192.0.2.10","a":"192.0.2.11","t":1765000000000000000}`, "repeated key"},
		{`{"v":1,"k":"login","a":"192.0.2.10","t":1765000000000000000,"x":1}`, "unknown key"},
		{`{"v":1,"k":"login","a":"192.0.2.10","t":"1765000000000000000"}`, "time as a string"},
		{`{"v":1,"k":"login","a":"192.0.2.10","t":1.5e18}`, "time as a float"},
		{`{"v":1,"k":"login","a":"192.0.2.10","t":-1}`, "negative time"},
		{`{"v":1,"k":"login","a":"192.0.2.10","t":9223372036854775807}`, "time too far ahead"},
		{`{"v":1,"k":"login","a":"192.0.2.10","t":1765000000000000000}{}`, "trailing object"},
		{`{"v":1,"k":"login","a":"192.0.2.10","t":1765000000000000000} x`, "trailing text"},
		{`{"v":1,"k":"login","a":"192.0.2.10","u":"a\nb","t":1765000000000000000}`, "control character in user"},
		{`{"v":1,"k":"login","a":"192.0.2.10","u":null,"t":1765000000000000000}`, "null user"},
		{`{"v":1,"k":"login","a":"192.0.2.10","u":["x"],"t":1765000000000000000}`, "array user"},
		{`{"v":1,"k":"login","a":"192.0.2.10","h":"` + strings.Repeat("h", 256) + `","t":1765000000000000000}`, "host too long"},
		{`{"v":1,"k":"login","a":"192.0.2.10","u":"` + strings.Repeat("u", MaxEventBytes) + `","t":1765000000000000000}`, "too large"},
	} {
		if ev, err := Decode([]byte(c.in)); err == nil {
			t.Errorf("%s: Decode(%q) = %v, want an error", c.why, c.in, ev)
		}
	}
}

// FuzzDecode: whatever the stream holds, Decode never panics, and what it
// accepts is an event relaygate could have written: a grantable address,
// bounded printable texts, a time in range, and it encodes back to an
// event that decodes the same.
func FuzzDecode(f *testing.F) {
	at := time.Unix(1_765_000_000, 5)
	f.Add(Event{Kind: KindLogin, Addr: netip.MustParseAddr("192.0.2.10"), User: "alice", Daemon: "dovecot", Host: "pop1", At: at}.Encode())
	f.Add(Event{Kind: KindRefresh, Addr: netip.MustParseAddr("2001:db8::1"), At: at}.Encode())
	f.Add(Event{Kind: KindEnd, Addr: netip.MustParseAddr("198.51.100.7"), User: "ü\"", At: at}.Encode())
	f.Add([]byte(`{"v":1,"k":"login","a":"0.0.0.0","t":1}`))
	f.Add([]byte(`{"v":1,"k":"login","a":"192.0.2.10","a":"10.0.0.1","t":1765000000000000000}`))
	f.Add([]byte(`{"v":1,"k":"login","a":"::ffff:10.0.0.1","u":"\u0000","t":1765000000000000000}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := Decode(b)
		if err != nil {
			return // refused: counted by its reason, never applied
		}
		if !ev.Addr.IsValid() || ev.Addr.Is4In6() || ev.Addr.Zone() != "" {
			t.Fatalf("accepted address %v", ev.Addr)
		}
		if ev.Kind < KindLogin || ev.Kind > KindEnd {
			t.Fatalf("accepted kind %d", ev.Kind)
		}
		if ev.At.Before(earliest) || !ev.At.Before(latest) {
			t.Fatalf("accepted time %v", ev.At)
		}
		for _, s := range []string{ev.User, ev.Daemon, ev.Host} {
			if !printable(s, maxUser) {
				t.Fatalf("accepted text %q", s)
			}
		}
		again, err := Decode(ev.Encode())
		if err != nil || again != ev {
			t.Fatalf("re-encoding %v: %v, %v", ev, again, err)
		}
	})
}

func TestIDs(t *testing.T) {
	t0 := time.Unix(1_764_999_960, 0) // a whole minute
	line := func(received time.Time) string {
		return SyslogID("pop1", "dovecot", "812", "imap-login: Login: user=<alice>, rip=192.0.2.10", received)
	}
	// Two relaygates receive the same line milliseconds apart: one event.
	if line(t0.Add(1*time.Millisecond)) != line(t0.Add(7*time.Millisecond)) {
		t.Error("the same line received 6 ms apart has two ids")
	}
	// The same text logged again 20 s later is another login.
	if line(t0) == line(t0.Add(20*time.Second)) {
		t.Error("the same text 20 s later has the same id")
	}
	// Any difference in what both see makes another event.
	if SyslogID("pop1", "dovecot", "812", "x", t0) == SyslogID("pop2", "dovecot", "812", "x", t0) ||
		SyslogID("pop1", "dovecot", "812", "x", t0) == SyslogID("pop1", "dovecot", "813", "x", t0) ||
		SyslogID("pop1", "dovecot", "81", "2x", t0) == SyslogID("pop1", "dovecot", "812", "x", t0) {
		t.Error("different lines share an id")
	}
	// The journal's own time is exact.
	if JournalID("h", "dovecot", "1", "x", t0) == JournalID("h", "dovecot", "1", "x", t0.Add(time.Microsecond)) {
		t.Error("two journal entries a microsecond apart share an id")
	}
	a := netip.MustParseAddr("192.0.2.10")
	if RefreshID(a, t0, time.Minute) != RefreshID(a, t0.Add(30*time.Second), time.Minute) {
		t.Error("two refreshes within one period have two ids")
	}
	if RefreshID(a, t0, time.Minute) == RefreshID(a, t0.Add(time.Minute), time.Minute) {
		t.Error("refreshes of two periods share an id")
	}
	if id := line(t0); !strings.HasPrefix(id, "rg1-") || len(id) != 4+22 {
		t.Errorf("id %q: want rg1- and 22 characters", id)
	}
}
