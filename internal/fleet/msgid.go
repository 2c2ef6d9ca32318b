package fleet

import (
	"crypto/sha256"
	"encoding/base64"
	"net/netip"
	"strconv"
	"time"
)

// Message ids (the Nats-Msg-Id header) make the same login one event
// however many relaygates publish it: JetStream drops a message whose id it
// stored within the stream's duplicate window (Duplicates, 2 minutes by
// default). An id is a hash of what every relaygate that receives the
// login sees identically, never of what differs between them.
//
//   - A syslog line: its HOSTNAME, program tag, PID and text, and the
//     10-second bucket of its arrival. relaygate keeps no header time (an
//     RFC 3164 header has no year or zone, and a grant never uses it), and
//     two relaygates fed by one log host receive a line within
//     milliseconds of each other; a line that straddles a bucket boundary
//     is published twice, which is harmless (a duplicate extends nothing
//     the first did not). The bucket keeps two identical lines logged
//     more than 10 s apart (a daemon without session ids, a user logging
//     in again) two events.
//   - A journal entry: the same, with the entry's own journal time to the
//     microsecond instead of a bucket (the reader gives it as Received).
//   - A report of the Dovecot auth policy endpoint: the reporting server,
//     address, user and the 10-second bucket.
//   - A refresh: the address and the refresh period it falls in, so two
//     relaygates holding the same session refresh it once per period.
//   - An end: the address and the second the grant ends at.
const idBucket = 10 * time.Second

// id hashes its parts, each length-prefixed so that no two lists of parts
// hash alike, into a 128-bit id in URL-safe base64, behind a version tag.
func id(parts ...string) string {
	h := sha256.New()
	var n [binaryLen]byte
	for _, p := range parts {
		h.Write(strconv.AppendInt(n[:0], int64(len(p)), 10))
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	sum := h.Sum(nil)
	return "rg1-" + base64.RawURLEncoding.EncodeToString(sum[:16])
}

const binaryLen = 20

func bucket(t time.Time, d time.Duration) string {
	return strconv.FormatInt(t.UnixNano()/int64(d), 10)
}

// SyslogID is the id of a login read from a syslog message.
func SyslogID(host, program, pid, text string, received time.Time) string {
	return id("syslog", host, program, pid, text, bucket(received, idBucket))
}

// JournalID is the id of a login read from a journal entry whose journal
// time is at.
func JournalID(host, program, pid, text string, at time.Time) string {
	return id("journal", host, program, pid, text, strconv.FormatInt(at.UnixMicro(), 10))
}

// PolicyID is the id of a login the Dovecot auth policy endpoint reported.
func PolicyID(peer string, addr netip.Addr, user string, received time.Time) string {
	return id("policy", peer, addr.Unmap().String(), user, bucket(received, idBucket))
}

// RefreshID is the id of a refresh of addr in the period of length every
// that at falls in.
func RefreshID(addr netip.Addr, at time.Time, every time.Duration) string {
	return id("refresh", addr.Unmap().String(), bucket(at, every))
}

// EndID is the id of the end of addr's last session, its grace running
// from at.
func EndID(addr netip.Addr, at time.Time) string {
	return id("end", addr.Unmap().String(), strconv.FormatInt(at.Unix(), 10))
}
