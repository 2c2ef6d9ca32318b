package journal

import (
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// BenchmarkEntry is relaygate's side of one journal entry: decoding
// journalctl's JSON line (with --output-fields, as the reader asks) and
// making the message, origin included. journalctl's own cost is measured
// by cmd/relaygate-load/journal-bench.sh.
func BenchmarkEntry(b *testing.B) {
	line := []byte(fmt.Sprintf(`{"__CURSOR":"s=c12482ccb742412090ab02238404d3d9;i=156;b=971b9d7283914e978928e0cff932f881;m=33e973cd6;t=661fd12ad46af;x=f7696878717acff6",`+
		`"__REALTIME_TIMESTAMP":"%d","__MONOTONIC_TIMESTAMP":"13935000790","_BOOT_ID":"971b9d7283914e978928e0cff932f881",`+
		`"_UID":"0","_GID":"0","_PID":"232","_COMM":"log","_EXE":"/usr/lib/dovecot/log","_HOSTNAME":"mail","SYSLOG_IDENTIFIER":"dovecot","SYSLOG_PID":"232",`+
		`"MESSAGE":"imap-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1, mpid=4711, TLS, session=<kX3b8Qp7aMDAAAIK>"}`,
		time.Now().UnixMicro()))
	r := &Reader{cfg: Config{Grace: 30 * time.Minute, Now: time.Now}, log: zerolog.Nop()}
	var f fields
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for range b.N {
		if _, ok := r.entry(line, &f); !ok {
			b.Fatal("skipped")
		}
		if len(r.pending) > 1024 {
			r.pending, r.pendingHead = r.pending[:0], 0
		}
	}
}
