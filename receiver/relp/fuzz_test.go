package relp

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// refFrame and refParse are a second reading of the frame grammar, written
// from doc/relp.md and librelp's relpframe.c as plainly as possible (index
// arithmetic on the whole input, no buffering), for FuzzRELPFrame to hold
// the frame reader to.
type refFrame struct {
	txnr    int
	command string
	data    string
	skipped int
}

// refParse returns the frames of in and the reason the stream ends ("" for
// a clean end between frames).
func refParse(in []byte, max int) ([]refFrame, string) {
	var out []refFrame
	i := 0
	// digits reads 1..9 digits at i; it returns the value, the index after
	// them, and a reason if they are not there.
	digits := func(reason string) (int, string) {
		start := i
		if i >= len(in) {
			return 0, reasonTruncated
		}
		if !isDigit(in[i]) {
			return 0, reason
		}
		v := 0
		for i < len(in) && isDigit(in[i]) {
			if i-start == maxDigits {
				return 0, reason
			}
			v = v*10 + int(in[i]-'0')
			i++
		}
		if i >= len(in) {
			return 0, reasonTruncated
		}
		return v, ""
	}
	for i < len(in) {
		var f refFrame
		var why string
		if f.txnr, why = digits(reasonBadTxnr); why != "" {
			return out, why
		}
		if in[i] != ' ' {
			return out, reasonBadTxnr
		}
		i++
		start := i
		for i < len(in) && in[i] != ' ' {
			if !isAlpha(in[i]) || i-start == maxCommandLen {
				return out, reasonBadCommand
			}
			i++
		}
		if i >= len(in) {
			return out, reasonTruncated
		}
		if i == start {
			return out, reasonBadCommand
		}
		f.command = string(in[start:i])
		i++
		n, why := digits(reasonBadDatalen)
		if why != "" {
			return out, why
		}
		if n == 0 {
			if in[i] != '\n' {
				return out, reasonBadTrailer
			}
			i++
			out = append(out, f)
			continue
		}
		if in[i] != ' ' {
			return out, reasonBadDatalen
		}
		i++
		if n > max && f.command != cmdSyslog {
			return out, reasonTooLong
		}
		if len(in)-i < n {
			return out, reasonTruncated
		}
		if n > max {
			f.skipped = n
		} else {
			f.data = string(in[i : i+n])
		}
		i += n
		if i >= len(in) {
			return out, reasonTruncated
		}
		if in[i] != '\n' {
			return out, reasonBadTrailer
		}
		i++
		out = append(out, f)
	}
	return out, ""
}

// FuzzRELPFrame holds the frame reader to refParse on any input: the same
// frames, the same reason to stop, whether the input arrives whole or a
// byte at a time; no panic, and no frame larger than the limit kept.
func FuzzRELPFrame(f *testing.F) {
	seeds := []string{
		"1 open 85 relp_version=0\nrelp_software=http://librelp.adiscon.com,1.11.0,librelp\ncommands=syslog\n",
		"2 syslog 5 hello\n3 close 0\n",
		"0004 syslog 003 abc\n",
		"999999999 syslog 1 a\n1 syslog 1 b\n",
		"0 serverclose 0\n",
		"1 syslog 40 " + string(bytes.Repeat([]byte("x"), 40)) + "\n2 syslog 1 y\n",
		"1000000000 syslog 1 a\n", "1 syslog 1000000000 a\n", "1  0\n", "1 close 0 \n",
		"1 syslog 1 ab\n", "1 syslog 1\n", "1 syslog 5 abc", "1 " + string(bytes.Repeat([]byte("a"), 33)) + " 0\n",
		"1 open 40 " + string(bytes.Repeat([]byte("o"), 40)) + "\n", "1 syslog 1 a\r\n", "", "\n", " ",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	const max = 32
	f.Fuzz(func(t *testing.T, in []byte) {
		want, wantWhy := refParse(in, max)
		for _, r := range []io.Reader{bytes.NewReader(in), iotest.OneByteReader(bytes.NewReader(in))} {
			fr := newFrameReader(r, max)
			var got []refFrame
			var err error
			for {
				var fm frame
				if fm, err = fr.next(); err != nil {
					break
				}
				if len(fm.data) > max {
					t.Fatalf("kept %d bytes of DATA, over the limit %d", len(fm.data), max)
				}
				cmd := fm.command
				if cmd == "" {
					cmd = string(fm.raw)
				}
				got = append(got, refFrame{txnr: int(fm.txnr), command: cmd, data: string(fm.data), skipped: fm.skipped})
			}
			gotWhy := ""
			if !errors.Is(err, io.EOF) {
				var ok bool
				if gotWhy, ok = frameReason(err); !ok {
					t.Fatalf("error %v is neither io.EOF nor a frame error", err)
				}
			}
			if gotWhy != wantWhy {
				t.Fatalf("input %q: stopped for %q (%v), reference for %q", in, gotWhy, err, wantWhy)
			}
			if len(got) != len(want) {
				t.Fatalf("input %q: %d frames %+v, reference %d %+v", in, len(got), got, len(want), want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("input %q: frame %d = %+v, reference %+v", in, i, got[i], want[i])
				}
				// A frame read is written back the same (up to leading
				// zeros), and reads back the same.
				if got[i].skipped == 0 {
					enc := appendFrame(nil, uint32(got[i].txnr), got[i].command, []byte(got[i].data))
					again, why := refParse(enc, max)
					if why != "" || len(again) != 1 || again[0] != got[i] {
						t.Fatalf("frame %+v encoded as %q reads back as %+v (%q)", got[i], enc, again, why)
					}
				}
			}
		}
	})
}
