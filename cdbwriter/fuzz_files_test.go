package cdbwriter

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/grants"
)

// FuzzLoadState: a state file is read at every start, and after a crash or
// a full disk it can hold anything. No content may panic or hang the
// reader, any error must be damage, and every grant returned must be
// whole (FuzzStateLineDecode holds each line's reading to encoding/json's).
func FuzzLoadState(f *testing.F) {
	f.Add([]byte(stateHeader + "\n"))
	f.Add([]byte(stateHeader + "\n" + `{"addr":"192.0.2.1","expires":"2026-11-21T10:30:00Z","user":"alice","daemon":"dovecot","host":"mx1"}` + "\n"))
	f.Add([]byte(stateHeader + "\n" + `{"addr":"2001:db8::1","expires":"2026-11-21T10:30:00Z","sessions":{"dovecot/abc":"2026-11-21T10:00:00Z"}}` + "\n" +
		`{"addr":"2001:db8::1","expires":"1970-01-01T00:00:00Z"}` + "\n"))
	f.Add([]byte(`{"addr":"192.0.2.1","expires":"2026-11-21T10:30:00Z"}` + "\n" + `{"addr":"192.0.2.2","exp`))
	f.Add([]byte("\x00\x00\x00\n\n{}\n[]\nnull\n"))
	// One file per worker process, rewritten for each input: a directory
	// per input would cost more than the read.
	path := filepath.Join(f.TempDir(), "pbs.state")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		gs, err := LoadState(path)
		var damage *StateDamage
		if err != nil && !errors.As(err, &damage) {
			t.Fatalf("LoadState: %v (not damage)", err)
		}
		for _, g := range gs {
			if !g.Addr.IsValid() || g.Expires.IsZero() {
				t.Errorf("restored an invalid grant %+v", g)
			}
		}
	})
}

// FuzzEachMapRecord: the existing map is read at start to carry its
// addresses over; it may be damaged or not a cdb at all. No content may
// panic the reader, make it read past the file, or make it carry over a key
// that is not an address in Postfix's exact form with the value OK.
func FuzzEachMapRecord(f *testing.F) {
	dir := f.TempDir()
	good := filepath.Join(dir, "good.cdb")
	if err := WriteMap(good, []grants.Grant{
		{Addr: netip.MustParseAddr("192.0.2.1"), Expires: time.Unix(1e9, 0)},
		{Addr: netip.MustParseAddr("2001:db8::5"), Expires: time.Unix(1e9, 0)},
	}); err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add(make([]byte, cdbHeaderSize))
	f.Add([]byte("not a cdb"))
	path := filepath.Join(dir, "pbs.cdb")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		read := 0
		err = eachMapRecord(file, func(key, value []byte) {
			read += len(key) + len(value)
			if a, ok := mapKeyAddr(key, value); ok && Key(a) != string(bytes.TrimSuffix(key, []byte{0})) {
				t.Errorf("key %q read as %s", key, a)
			}
		})
		var damage *mapDamage
		if err != nil && !errors.As(err, &damage) {
			t.Fatalf("eachMapRecord: %v (not damage)", err)
		}
		if read > len(data) {
			t.Errorf("read %d bytes of records from a %d-byte file", read, len(data))
		}
	})
}
