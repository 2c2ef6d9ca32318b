package grants

import (
	"fmt"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func TestOpenSessionSurvivesGrace(t *testing.T) {
	tab := NewTable(TableConfig{Grace: 30 * time.Minute, MaxSession: 24 * time.Hour})
	tab.Login(grant("192.0.2.10"), "S1", t0)
	// Thunderbird keeps its IMAP session open for hours.
	if gone := tab.Expire(t0.Add(5 * time.Hour)); len(gone) != 0 {
		t.Fatalf("open session expired: %v", gone)
	}
	if next, _ := tab.NextExpiry(); !next.Equal(t0.Add(24 * time.Hour)) {
		t.Fatalf("next expiry with an open session = %v, want the session limit", next)
	}
}

func TestGraceRunsFromLastLogout(t *testing.T) {
	tab := NewTable(TableConfig{Grace: 30 * time.Minute, MaxSession: 24 * time.Hour})
	tab.Login(grant("192.0.2.10"), "S1", t0)
	tab.Login(grant("192.0.2.10"), "S2", t0.Add(time.Minute))
	logout1 := t0.Add(2 * time.Hour)
	if a, ok := tab.Logout("dovecot", "S1", logout1); !ok || a != netip.MustParseAddr("192.0.2.10") {
		t.Fatalf("Logout(S1) = %v, %v", a, ok)
	}
	// S2 is still open: nothing expires at S1's logout + grace.
	if gone := tab.Expire(logout1.Add(time.Hour)); len(gone) != 0 {
		t.Fatalf("expired with a session still open: %v", gone)
	}
	logout2 := t0.Add(3 * time.Hour)
	tab.Logout("dovecot", "S2", logout2)
	if gone := tab.Expire(logout2.Add(30*time.Minute - time.Nanosecond)); len(gone) != 0 {
		t.Fatalf("expired before grace after the last logout: %v", gone)
	}
	if gone := tab.Expire(logout2.Add(30 * time.Minute)); len(gone) != 1 {
		t.Fatalf("not expired at last logout + grace: %v", gone)
	}
}

func TestLogoutNeverGrants(t *testing.T) {
	tab := NewTable(TableConfig{Grace: 30 * time.Minute})
	if _, ok := tab.Logout("dovecot", "unknown", t0); ok {
		t.Fatal("logout of an unknown session did something")
	}
	if tab.Len() != 0 {
		t.Fatal("a logout inserted an address")
	}
	// Sessions are per daemon: a Courier logout cannot close a Dovecot session.
	tab.Login(grant("192.0.2.1"), "S", t0)
	if _, ok := tab.Logout("courier", "S", t0); ok {
		t.Fatal("another daemon's logout closed the session")
	}
}

func TestMaxSessionClosesLostSession(t *testing.T) {
	tab := NewTable(TableConfig{Grace: 30 * time.Minute, MaxSession: 24 * time.Hour})
	tab.Login(grant("192.0.2.10"), "lost", t0)
	limit := t0.Add(24 * time.Hour)
	if gone := tab.Expire(limit.Add(-time.Nanosecond)); len(gone) != 0 {
		t.Fatalf("closed before -max-session: %v", gone)
	}
	// At the limit the session closes by itself, and grace runs from there.
	if gone := tab.Expire(limit); len(gone) != 0 {
		t.Fatalf("expired at the session limit instead of limit + grace: %v", gone)
	}
	if next, _ := tab.NextExpiry(); !next.Equal(limit.Add(30 * time.Minute)) {
		t.Fatalf("next expiry = %v, want limit + grace", next)
	}
	if gone := tab.Expire(limit.Add(30 * time.Minute)); len(gone) != 1 {
		t.Fatalf("lost session never expired: %v", gone)
	}
}

func TestSessionsPerAddressBounded(t *testing.T) {
	tab := NewTable(TableConfig{Grace: time.Minute})
	for i := range 10 * maxSessionsPerAddr {
		tab.Login(grant("192.0.2.1"), "s"+strconv.Itoa(i), t0.Add(time.Duration(i)))
	}
	if n := len(tab.sessions); n != maxSessionsPerAddr {
		t.Fatalf("%d sessions tracked, want the cap %d", n, maxSessionsPerAddr)
	}
}

func TestMaxEntriesEvictsLeastRecentlyLoggedIn(t *testing.T) {
	tab := NewTable(TableConfig{Grace: time.Hour, MaxEntries: 3})
	for i, a := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		tab.Login(grant(a), "", t0.Add(time.Duration(i)*time.Second))
	}
	// .1 logs in again, so .2 is now the least recently seen.
	tab.Login(grant("192.0.2.1"), "", t0.Add(10*time.Second))
	tab.Login(grant("192.0.2.4"), "", t0.Add(11*time.Second))
	if tab.Len() != 3 || tab.Evictions() != 1 {
		t.Fatalf("len %d evictions %d, want 3 and 1", tab.Len(), tab.Evictions())
	}
	var got []string
	for _, g := range tab.Grants() {
		got = append(got, g.Addr.String())
	}
	if fmt.Sprint(got) != "[192.0.2.1 192.0.2.3 192.0.2.4]" {
		t.Fatalf("grants after eviction = %v, want .2 evicted", got)
	}
}

func TestMaxEntriesBoundsAFlood(t *testing.T) {
	const limit = 1000
	tab := NewTable(TableConfig{Grace: time.Hour, MaxEntries: limit})
	for i := range 50 * limit {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		tab.Login(Grant{Addr: a, Daemon: "dovecot"}, fmt.Sprint("s", i), t0)
	}
	order := 0
	for i := tab.head; i >= 0; i = tab.at(i).next {
		order++
	}
	if tab.Len() != limit || len(tab.sessions) > limit || len(tab.open) > limit || order != limit {
		t.Fatalf("len %d sessions %d open %d order %d, want at most %d", tab.Len(), len(tab.sessions), len(tab.open), order, limit)
	}
	if len(tab.expiry) > 2*limit+1024 {
		t.Fatalf("expiry heap holds %d items for %d grants", len(tab.expiry), limit)
	}
	if tab.Evictions() != 49*limit {
		t.Fatalf("evictions %d", tab.Evictions())
	}
}

func TestSetExcludeRemovesNewlyExcluded(t *testing.T) {
	tab := NewTable(TableConfig{Grace: time.Hour})
	tab.Login(grant("192.0.2.1"), "S", t0)
	tab.Login(grant("198.51.100.1"), "", t0)
	m1, _ := tab.Versions()
	gone := tab.SetExclude([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")})
	if len(gone) != 1 || gone[0].Addr != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("SetExclude removed %v", gone)
	}
	if m2, _ := tab.Versions(); m2 == m1 {
		t.Fatal("membership version not bumped: the map would not be rewritten")
	}
	if _, ok := tab.Logout("dovecot", "S", t0); ok {
		t.Fatal("session of a removed grant still open")
	}
	if out := tab.Login(grant("192.0.2.9"), "", t0); out != Excluded {
		t.Fatalf("login inside the new exclusion = %v", out)
	}
	if tab.Len() != 1 {
		t.Fatalf("other grants dropped: %v", tab.Grants())
	}
}
