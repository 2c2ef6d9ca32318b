package relp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll reads frames until an error; it returns them (data copied) and
// the error.
func readAll(r io.Reader, max int) ([]frame, error) {
	fr := newFrameReader(r, max)
	var out []frame
	for {
		f, err := fr.next()
		if err != nil {
			return out, err
		}
		f.data = bytes.Clone(f.data)
		f.raw = bytes.Clone(f.raw)
		out = append(out, f)
	}
}

func TestFrameReaderGood(t *testing.T) {
	long := strings.Repeat("x", 100)
	cases := []struct {
		name string
		in   string
		want []frame // command "" means an unknown one, raw given
	}{
		{"syslog", "2 syslog 5 hello\n", []frame{{txnr: 2, command: cmdSyslog, data: []byte("hello")}}},
		{"close without data", "7 close 0\n", []frame{{txnr: 7, command: cmdClose, data: []byte{}}}},
		{"open with offers", "1 open 30 relp_version=0\ncommands=syslog\n",
			[]frame{{txnr: 1, command: cmdOpen, data: []byte("relp_version=0\ncommands=syslog")}}},
		{"data with SP and LF", "3 syslog 7 a b\nc d\n", []frame{{txnr: 3, command: cmdSyslog, data: []byte("a b\nc d")}}},
		{"data with NUL and high bytes", "3 syslog 3 \x00\xff\n\n", []frame{{txnr: 3, command: cmdSyslog, data: []byte("\x00\xff\n")}}},
		{"leading zeros", "0004 syslog 003 abc\n", []frame{{txnr: 4, command: cmdSyslog, data: []byte("abc")}}},
		{"nine-digit numbers", "999999999 syslog 000000003 abc\n", []frame{{txnr: 999999999, command: cmdSyslog, data: []byte("abc")}}},
		{"hint", "0 serverclose 0\n", []frame{{txnr: 0, raw: []byte("serverclose"), data: []byte{}}}},
		{"unknown 32-letter command", "5 " + strings.Repeat("Z", 32) + " 0\n", []frame{{txnr: 5, raw: []byte(strings.Repeat("Z", 32)), data: []byte{}}}},
		{"commands are case-sensitive", "5 SYSLOG 1 x\n", []frame{{txnr: 5, raw: []byte("SYSLOG"), data: []byte("x")}}},
		{"data of exactly max", "6 syslog 100 " + long + "\n", []frame{{txnr: 6, command: cmdSyslog, data: []byte(long)}}},
		{"syslog over max is skipped", "6 syslog 101 " + long + "y\n8 syslog 1 z\n",
			[]frame{{txnr: 6, command: cmdSyslog, skipped: 101}, {txnr: 8, command: cmdSyslog, data: []byte("z")}}},
		{"back to back", "1 open 0\n2 syslog 1 a\n3 syslog 2 bc\n4 close 0\n", []frame{
			{txnr: 1, command: cmdOpen, data: []byte{}},
			{txnr: 2, command: cmdSyslog, data: []byte("a")},
			{txnr: 3, command: cmdSyslog, data: []byte("bc")},
			{txnr: 4, command: cmdClose, data: []byte{}},
		}},
		{"empty stream", "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// One byte at a time too: nothing may depend on how reads split.
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				got, err := readAll(r, 100)
				if !errors.Is(err, io.EOF) {
					t.Fatalf("error %v, want io.EOF after the frames", err)
				}
				if len(got) != len(tc.want) {
					t.Fatalf("got %d frames %+v, want %d", len(got), got, len(tc.want))
				}
				for i := range got {
					g, w := got[i], tc.want[i]
					if g.txnr != w.txnr || g.command != w.command || !bytes.Equal(g.raw, w.raw) ||
						!bytes.Equal(g.data, w.data) || g.skipped != w.skipped {
						t.Errorf("frame %d = %+v, want %+v", i, g, w)
					}
				}
			}
		})
	}
}

// TestFrameReaderMalformed has every class of malformed frame: each ends
// the stream with its reason.
func TestFrameReaderMalformed(t *testing.T) {
	cases := []struct {
		reason string
		in     string
	}{
		// TXNR
		{reasonBadTxnr, " 1 syslog 1 a\n"},
		{reasonBadTxnr, "x syslog 1 a\n"},
		{reasonBadTxnr, "-1 syslog 1 a\n"},
		{reasonBadTxnr, "+1 syslog 1 a\n"},
		{reasonBadTxnr, "\n"},
		{reasonBadTxnr, "1000000000 syslog 1 a\n"},  // ten digits
		{reasonBadTxnr, "0000000001 syslog 1 a\n"},  // ten digits, even as zeros
		{reasonBadTxnr, "1\tsyslog 1 a\n"},          // tab, not SP
		{reasonBadTxnr, "1x syslog 1 a\n"},          // letter after digits
		{reasonBadTxnr, "1\nsyslog 1 a\n"},          // LF for SP
		{reasonBadTxnr, "١ syslog 1 a\n"},           // a non-ASCII digit
		{reasonBadCommand, "1  1 a\n"},              // empty COMMAND
		{reasonBadCommand, "1 sys-log 1 a\n"},       // not a letter
		{reasonBadCommand, "1 syslog1 1 a\n"},       // a digit in COMMAND
		{reasonBadCommand, "1 syslog\n"},            // LF for SP
		{reasonBadCommand, "1 sysl\xc3\xb6g 1 a\n"}, // non-ASCII letter
		{reasonBadCommand, "1 " + strings.Repeat("a", 33) + " 0\n"},
		// DATALEN
		{reasonBadDatalen, "1 syslog  a\n"},           // empty
		{reasonBadDatalen, "1 syslog a\n"},            // not digits
		{reasonBadDatalen, "1 syslog -1 a\n"},         // sign
		{reasonBadDatalen, "1 syslog 1000000000 a\n"}, // ten digits
		{reasonBadDatalen, "1 syslog 1\ta\n"},         // tab after it
		{reasonBadDatalen, "1 syslog 1\n"},            // LF after a non-zero DATALEN
		{reasonBadDatalen, "1 syslog 1x a\n"},
		// trailer
		{reasonBadTrailer, "1 close 0 \n"}, // DATALEN 0 with SP
		{reasonBadTrailer, "1 close 0x\n"},
		{reasonBadTrailer, "1 syslog 1 ab\n"}, // DATA longer than DATALEN
		{reasonBadTrailer, "1 syslog 2 a\nb"},
		{reasonBadTrailer, "1 syslog 1 a\r\n"}, // CR LF
		{reasonBadTrailer, "1 syslog 1 a 2 syslog 1 b\n"},
		// size
		{reasonTooLong, "1 open 101 " + strings.Repeat("o", 101) + "\n"},
		{reasonTooLong, "1 close 999999999 "},
		{reasonTooLong, "1 rsp 101 "},
		// truncation, in every field
		{reasonTruncated, "1"},
		{reasonTruncated, "1 "},
		{reasonTruncated, "1 sysl"},
		{reasonTruncated, "1 syslog "},
		{reasonTruncated, "1 syslog 1"},
		{reasonTruncated, "1 syslog 1 "},
		{reasonTruncated, "1 syslog 5 abc"},
		{reasonTruncated, "1 syslog 3 abc"},
		{reasonTruncated, "1 close 0"},
		{reasonTruncated, "1 syslog 200 abc"}, // skipping an over-long one
		{reasonTruncated, "123456789"},
	}
	for _, tc := range cases {
		t.Run(tc.reason+"/"+strings.ToValidUTF8(strings.ReplaceAll(tc.in, "\n", `\n`), "?"), func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				_, err := readAll(r, 100)
				reason, ok := frameReason(err)
				if !ok || reason != tc.reason {
					t.Fatalf("error %v (reason %q), want reason %q", err, reason, tc.reason)
				}
			}
		})
	}
}

// TestFrameReaderAfterGoodFrame: a malformed frame after a good one still
// returns the good one first.
func TestFrameReaderAfterGoodFrame(t *testing.T) {
	got, err := readAll(strings.NewReader("2 syslog 1 a\n3 syslog x\n"), 100)
	if len(got) != 1 || string(got[0].data) != "a" {
		t.Fatalf("frames %+v", got)
	}
	if r, _ := frameReason(err); r != reasonBadDatalen {
		t.Fatalf("error %v, want bad_datalen", err)
	}
}

// TestFrameReaderReadError: an error of the connection is not a frame
// error.
func TestFrameReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := readAll(io.MultiReader(strings.NewReader("1 sys"), iotest.ErrReader(boom)), 100)
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want boom", err)
	}
	if _, ok := frameReason(err); ok {
		t.Fatal("a read error reported as a frame error")
	}
}

func TestNextTxnr(t *testing.T) {
	for _, c := range [][2]uint32{{1, 2}, {41, 42}, {999_999_998, 999_999_999}, {999_999_999, 1}} {
		if got := nextTxnr(c[0]); got != c[1] {
			t.Errorf("nextTxnr(%d) = %d, want %d", c[0], got, c[1])
		}
	}
}

func TestAppendFrameAndRsp(t *testing.T) {
	if got := string(appendFrame(nil, 1, "close", nil)); got != "1 close 0\n" {
		t.Errorf("appendFrame = %q", got)
	}
	if got := string(appendFrame(nil, 12, "syslog", []byte("a b"))); got != "12 syslog 3 a b\n" {
		t.Errorf("appendFrame = %q", got)
	}
	if got := string(appendRsp(nil, 7, rspOK)); got != "7 rsp 6 200 OK\n" {
		t.Errorf("appendRsp = %q", got)
	}
}

func TestParseOffers(t *testing.T) {
	// What librelp 1.11's client sends (relpSessConstructOffers).
	librelp := "relp_version=0\nrelp_software=http://librelp.adiscon.com,1.11.0,librelp\ncommands=syslog"
	o, err := parseOffers([]byte(librelp))
	if err != nil || o.version != 0 || !o.syslog || o.software != "http://librelp.adiscon.com,1.11.0,librelp" {
		t.Fatalf("parseOffers(librelp) = %+v, %v", o, err)
	}
	if got := openAnswer(o.version, "relaygate"); got != "200 OK\nrelp_version=0\nrelp_software=relaygate\ncommands=syslog" {
		t.Errorf("openAnswer = %q", got)
	}
	if got := openAnswer(7, "relaygate"); !strings.Contains(got, "relp_version=1\n") {
		t.Errorf("openAnswer to a newer client = %q, want version 1", got)
	}
	good := []string{
		"relp_version=1\ncommands=syslog",
		"commands=eventlog,syslog\nrelp_version=0\n\nunknown=1,2\nflag",
		"relp_version=0\ncommands=syslog\n",
	}
	for _, in := range good {
		if _, err := parseOffers([]byte(in)); err != nil {
			t.Errorf("parseOffers(%q): %v", in, err)
		}
	}
	bad := []string{
		"",
		"commands=syslog",
		"relp_version\ncommands=syslog",
		"relp_version=\ncommands=syslog",
		"relp_version=x\ncommands=syslog",
		"relp_version=-1\ncommands=syslog",
		"relp_version=1234567890\ncommands=syslog",
		"relp_version=0",
		"relp_version=0\ncommands=eventlog",
		"relp_version=0\ncommands=Syslog",
		"relp_version=0\ncommands=syslog\n" + strings.Repeat("n", 33) + "=1",
		"relp_version=0\ncommands=syslog\nx=" + strings.Repeat("v", 256),
		"relp_version=0\ncommands=syslog\nx=" + strings.Repeat("v,", 64) + "v",
	}
	for _, in := range bad {
		if o, err := parseOffers([]byte(in)); err == nil {
			t.Errorf("parseOffers(%q) = %+v, want an error", in, o)
		}
	}
}
