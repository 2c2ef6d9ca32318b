package cdbwriter

import (
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

func TestSessionsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	svc := newTestService(t, dir, 30*time.Minute)
	svc.Login(grant("192.0.2.10"), "S1", t0)
	svc.Tick(t0.Add(time.Second))
	again := newTestService(t, dir, 30*time.Minute)
	// Hours later, past grace: still granted because the session is open.
	later := t0.Add(5 * time.Hour)
	again.Tick(later)
	if keys := mapKeys(t, dir); len(keys) != 1 {
		t.Fatalf("open session lost across restart: map %v", keys)
	}
	again.Logout("dovecot", "alice", "S1", later)
	again.Tick(later.Add(30 * time.Minute))
	if keys := mapKeys(t, dir); len(keys) != 0 {
		t.Fatalf("not expired after logout + grace: %v", keys)
	}
}
