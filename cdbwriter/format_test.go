package cdbwriter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/colinmarc/cdb"

	"github.com/relaygate/relaygate/internal/grants"
)

// TestStateFileFromBeforeLoads: a state file written by relaygate before the
// hand-written encoder (testdata/state-v1.state, by encoding/json) restores
// every grant and session, and saving the table again loses nothing.
func TestStateFileFromBeforeLoads(t *testing.T) {
	gs, err := LoadState("testdata/state-v1.state")
	if err != nil || len(gs) != 4 {
		t.Fatalf("LoadState = %d grants, %v", len(gs), err)
	}
	now := time.Date(2026, 11, 21, 10, 5, 0, 0, time.UTC)
	tab := grants.NewTable(grants.TableConfig{Grace: 30 * time.Minute})
	if n := tab.Restore(gs, now); n != 4 {
		t.Fatalf("restored %d of 4", n)
	}
	want := tab.Grants()
	if got := fmt.Sprint(want); !strings.Contains(got, "bob <b&b>") || !strings.Contains(got, "uw/1299") || !strings.Contains(got, "carol\u2028") {
		t.Fatalf("restored grants lost data: %v", got)
	}
	path := filepath.Join(t.TempDir(), "pbs.state")
	if err := saveTable(path, tab, nil); err != nil {
		t.Fatal(err)
	}
	again, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	back := grants.NewTable(grants.TableConfig{Grace: 30 * time.Minute})
	back.Restore(again, now)
	if fmt.Sprint(back.Grants()) != fmt.Sprint(toUTC(want)) {
		t.Fatalf("after a save and load:\n%v\nwant\n%v", back.Grants(), toUTC(want))
	}
}

func toUTC(gs []grants.Grant) []grants.Grant {
	for i := range gs {
		gs[i].Expires = gs[i].Expires.UTC()
		for k, at := range gs[i].Sessions {
			gs[i].Sessions[k] = at.UTC()
		}
	}
	return gs
}

// TestStateLineIsEncodingJSON: the hand-written encoder writes exactly what
// json.Encoder wrote for a Grant, escapes and all.
func TestStateLineIsEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		var b []byte
		for range rng.IntN(12) {
			switch rng.IntN(5) {
			case 0:
				b = append(b, byte(rng.IntN(256))) // control bytes, invalid UTF-8
			case 1:
				const tricky = "<>&\"\\\u2028\u2029é€😀\x7f"
				b = append(b, tricky[rng.IntN(len(tricky))]) // bytes of runes too
			case 2:
				b = append(b, []string{"\u2028", "\u2029", "é", "😀", "\ufffd", "\x00"}[rng.IntN(6)]...)
			default:
				b = append(b, byte('a'+rng.IntN(26)))
			}
		}
		return string(b)
	}
	zones := []*time.Location{time.UTC, time.FixedZone("", 3600), time.FixedZone("", -5*3600-1800)}
	for i := range 5000 {
		g := grants.Grant{
			Addr:    netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}),
			Expires: t0.Add(time.Duration(rng.Int64N(1e15))).In(zones[rng.IntN(3)]),
			User:    str(), Daemon: str(), Host: str(),
		}
		if i%2 == 0 {
			g.Addr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		}
		if i%3 == 0 {
			g.Sessions = map[string]time.Time{str(): t0, str() + "/x": t0.Add(time.Nanosecond)}
		}
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(g); err != nil {
			t.Fatal(err)
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range g.Sessions {
				if !yield(k) {
					return
				}
			}
		})
		var ss []grants.OpenSession
		for _, k := range keys {
			ss = append(ss, grants.OpenSession{Key: k, Opened: g.Sessions[k]})
		}
		got := appendStateLine(nil, g.Addr, g.Expires, g.User, g.Daemon, g.Host, ss)
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("grant %d:\n got %s\nwant %s", i, got, want.Bytes())
		}
		checkStateLineDecode(t, bytes.TrimSpace(got))
	}
}

// checkStateLineDecode: where the fast state-line decoder takes a line, it
// reads what encoding/json reads from it.
func checkStateLineDecode(t *testing.T, line []byte) (fast bool) {
	t.Helper()
	var got, want grants.Grant
	if !decodeStateLine(line, &got) {
		return false
	}
	if err := json.Unmarshal(line, &want); err != nil {
		t.Fatalf("decodeStateLine took %q, which encoding/json refuses: %v", line, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeStateLine(%q)\n = %#v\nencoding/json: %#v", line, got, want)
	}
	return true
}

// TestStateLineDecodeTakesWhatItWrites: every line the encoder writes
// without escapes goes the fast way, so a restart does not fall back to
// encoding/json for ordinary grants.
func TestStateLineDecodeTakesWhatItWrites(t *testing.T) {
	tab := grants.NewTable(grants.TableConfig{Grace: time.Hour})
	tab.Login(grants.Grant{Addr: netip.MustParseAddr("192.0.2.1"), User: "alice@example.net", Daemon: "dovecot", Host: "mx1"}, "kX3b8Qp7", t0)
	tab.Login(grants.Grant{Addr: netip.MustParseAddr("2001:db8::1"), User: "bob", Daemon: "courier"}, "", t0)
	tab.Login(grants.Grant{Addr: netip.MustParseAddr("198.51.100.7"), User: "zoë", Daemon: "uw", Host: "mx2"}, "", t0)
	var line []byte
	tab.Each(func(r *grants.Record) {
		line = appendRecordLine(line[:0], r)
		if !checkStateLineDecode(t, bytes.TrimSpace(line)) {
			t.Errorf("the fast decoder refused %s", line)
		}
	})
	tomb := appendStateLine(nil, netip.MustParseAddr("192.0.2.9"), tombstone, "", "", "", nil)
	if !checkStateLineDecode(t, bytes.TrimSpace(tomb)) {
		t.Errorf("the fast decoder refused the tombstone %s", tomb)
	}
}

// FuzzStateLineDecode: whatever the fast state-line decoder accepts,
// encoding/json accepts and reads the same way; lines the encoder writes
// are the seeds, mutations of them the test.
func FuzzStateLineDecode(f *testing.F) {
	data, err := os.ReadFile("testdata/state-v1.state")
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range bytes.Split(data, []byte("\n")) {
		f.Add(l)
	}
	f.Add([]byte(`{"addr":"2001:db8::1","expires":"2026-11-21T10:30:00Z","user":"a","sessions":{}}`))
	f.Add([]byte(`{"addr":"192.0.2.1","expires":"2026-11-21T10:30:00+01:00","sessions":{"a":"2026-11-21T10:00:00Z","a":"2026-11-21T10:00:01Z"}}`))
	f.Add([]byte(`{"addr":"","expires":"1970-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		checkStateLineDecode(t, line)
	})
}

// TestMapBytesAsBefore: the map is byte for byte what colinmarc/cdb (which
// relaygate used before) writes for the same keys, and what postmap writes
// from a text file of the same keys in the same order.
func TestMapBytesAsBefore(t *testing.T) {
	dir := t.TempDir()
	var gs []grants.Grant
	var text strings.Builder
	for i := range 5000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if i%4 == 0 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 13: 1, 14: byte(i >> 8), 15: byte(i)})
		}
		gs = append(gs, grants.Grant{Addr: a})
		fmt.Fprintf(&text, "%s OK\n", Key(a))
	}
	ours := filepath.Join(dir, "ours.cdb")
	if err := WriteMap(ours, gs); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(ours)

	theirs := filepath.Join(dir, "colinmarc.cdb")
	w, err := cdb.Create(theirs)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		w.Put([]byte(Key(g.Addr)), []byte(MapValue))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if want, _ := os.ReadFile(theirs); !bytes.Equal(got, want) {
		t.Fatalf("map differs from colinmarc/cdb's (%d and %d bytes)", len(got), len(want))
	}

	postmap := requirePostmap(t)
	if postmap == "" {
		return
	}
	src := filepath.Join(dir, "postmap")
	os.WriteFile(src, []byte(text.String()), 0o644)
	if out, err := exec.Command(postmap, "cdb:"+src).CombinedOutput(); err != nil {
		t.Fatalf("postmap: %v: %s", err, out)
	}
	if want, _ := os.ReadFile(src + ".cdb"); !bytes.Equal(got, want) {
		t.Fatalf("map differs from postmap's (%d and %d bytes)", len(got), len(want))
	}
}
