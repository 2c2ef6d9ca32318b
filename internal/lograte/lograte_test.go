package lograte

import (
	"testing"
	"time"
)

// TestAllowOncePerInterval: one line per reason and interval, the next
// one carrying the count suppressed meanwhile; reasons apart.
func TestAllowOncePerInterval(t *testing.T) {
	l := New(10 * time.Second)
	t0 := time.Unix(1_700_000_000, 0)
	if n, ok := l.allow("a", t0); !ok || n != 0 {
		t.Fatalf("first: %d %v", n, ok)
	}
	for range 3 {
		if _, ok := l.allow("a", t0.Add(time.Second)); ok {
			t.Fatal("a second line within the interval went through")
		}
	}
	if _, ok := l.allow("b", t0.Add(time.Second)); !ok {
		t.Fatal("another reason was held back")
	}
	if n, ok := l.allow("a", t0.Add(11*time.Second)); !ok || n != 3 {
		t.Fatalf("after the interval: %d %v, want 3 true", n, ok)
	}
}
