package receiver

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestFrameReader(t *testing.T) {
	long := strings.Repeat("x", 70000)
	stream := "<13>Nov 21 10:00:00 h a: one\n" +
		"28 <13>Nov 21 10:00:00 h a: two" +
		"<13>Nov 21 10:00:00 h a: three\r\n" +
		long + "\n" + // over the limit: skipped, stream goes on
		"70000 " + long + // octet-counted and over the limit: skipped exactly
		"\n" + // stray newline between frames
		"2026-11-21T10:00:00Z h a: four\n" + // digits but not a count
		"<13>Nov 21 10:00:00 h a: five" // no newline before EOF
	fr := newFrameReader(strings.NewReader(stream), DefaultMaxMessage)
	var got []string
	tooLong := 0
	for {
		msg, err := fr.next()
		if errors.Is(err, errTooLong) {
			tooLong++
			continue
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("next: %v", err)
			}
			break
		}
		if len(msg) > 0 {
			got = append(got, string(msg))
		}
	}
	want := []string{
		"<13>Nov 21 10:00:00 h a: one",
		"<13>Nov 21 10:00:00 h a: two",
		"<13>Nov 21 10:00:00 h a: three",
		"2026-11-21T10:00:00Z h a: four",
		"<13>Nov 21 10:00:00 h a: five",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("messages\n got %q\nwant %q", got, want)
	}
	if tooLong != 2 {
		t.Errorf("too long = %d, want 2", tooLong)
	}
}

func TestFrameReaderBadCount(t *testing.T) {
	fr := newFrameReader(strings.NewReader("12345678901 x"), DefaultMaxMessage)
	if _, err := fr.next(); !errors.Is(err, errBadFrame) {
		t.Fatalf("next = %v, want errBadFrame", err)
	}
	// "-5 <13>abc" is not a count at all: it is one (useless) line.
	fr = newFrameReader(strings.NewReader("-5 <13>abc\n"), DefaultMaxMessage)
	if msg, err := fr.next(); err != nil || string(msg) != "-5 <13>abc" {
		t.Fatalf("next = %q, %v", msg, err)
	}
}

func FuzzFrameReader(f *testing.F) {
	f.Add([]byte("28 <13>Nov 21 10:00:00 h a: two<13>x\n"))
	f.Add([]byte("-5 <13>abc\n5 <13>"))
	f.Add([]byte("0 \n00000 x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := newFrameReader(bufio.NewReader(strings.NewReader(string(data))), 128)
		for i := 0; i < len(data)+2; i++ {
			msg, err := fr.next()
			if err != nil && !errors.Is(err, errTooLong) {
				return
			}
			if len(msg) > 128 {
				t.Fatalf("message of %d bytes over the limit", len(msg))
			}
		}
	})
}

func TestFrameReaderTruncatedFrame(t *testing.T) {
	for _, in := range []string{"500 <13>Nov 21 10:00:00 h a: x\n", "123456789 short", "12 "} {
		fr := newFrameReader(strings.NewReader(in), DefaultMaxMessage)
		if _, err := fr.next(); !errors.Is(err, errTruncated) {
			t.Errorf("next(%q) = %v, want errTruncated", in, err)
		}
	}
}
