package grants

import (
	"net/netip"
	"testing"
	"time"
)

func TestEachOpenListsOnlyOpenGrants(t *testing.T) {
	tb := NewTable(TableConfig{Grace: time.Minute, MaxSession: time.Hour, MaxEntries: 10})
	defer tb.Release()
	now := time.Unix(1_700_000_000, 0)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	tb.Login(Grant{Addr: a, User: "alice", Daemon: "dovecot", Host: "pop1"}, "S1", now)
	tb.Login(Grant{Addr: b, User: "bob", Daemon: "dovecot"}, "", now)
	var got []string
	tb.EachOpen(func(r *Record) { got = append(got, r.Addr.String()+" "+string(r.User)+" "+r.Host) })
	if len(got) != 1 || got[0] != "192.0.2.1 alice pop1" {
		t.Fatalf("open grants %q, want only alice's", got)
	}
	tb.Logout("dovecot", "S1", now.Add(time.Second))
	got = got[:0]
	tb.EachOpen(func(r *Record) { got = append(got, r.Addr.String()) })
	if len(got) != 0 {
		t.Fatalf("after the logout: %q", got)
	}
}
