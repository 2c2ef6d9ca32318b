package receiver

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/relaygate/relaygate/receiver/syslogmsg"
)

// errTooLong reports a message over the size limit that was skipped; the
// stream stays in sync, so reading goes on with the next message.
var errTooLong = errors.New("message too long")

// errTruncated reports a stream that ended inside an octet-counted frame:
// the count promised more than the sender sent.
var errTruncated = errors.New("stream ended inside an octet-counted frame")

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errTruncated
	}
	return err
}

// errBadFrame reports framing the stream cannot be resynchronised after.
var errBadFrame = errors.New("bad octet-counted frame")

// frameReader splits a syslog TCP stream into messages. Each message may use
// RFC 6587 octet counting ("LEN SP MSG") or newline framing; rsyslog and
// syslog-ng can switch per connection, so it is decided per message.
//
// go-syslog's own splitter is not used: it panics on a negative count
// ("-5 <13>abc") and its bufio.Scanner drops the whole connection, and every
// message queued behind it, on the first line over 64 KiB.
type frameReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

func newFrameReader(r io.Reader, max int) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 64*1024), max: max}
}

// next returns the next message; the slice is valid until the next call.
// errTooLong is recoverable; errBadFrame and read errors end the stream.
func (f *frameReader) next() ([]byte, error) {
	count, isCounted, err := f.octetCount()
	if err != nil {
		return nil, err
	}
	if isCounted {
		// The size limit is measured as on every other transport: without
		// the trailing CR, LF or NUL some senders count into the frame.
		if count > f.max+2 {
			if _, err := f.r.Discard(count); err != nil {
				return nil, truncated(err)
			}
			return nil, errTooLong
		}
		if cap(f.buf) < count {
			f.buf = make([]byte, count)
		}
		f.buf = f.buf[:count]
		if _, err := io.ReadFull(f.r, f.buf); err != nil {
			return nil, truncated(err)
		}
		msg := syslogmsg.TrimTrailingControl(f.buf)
		if len(msg) > f.max {
			return nil, errTooLong
		}
		return msg, nil
	}
	return f.line()
}

// octetCount looks for "DIGITS SP" at the start of the next message. It peeks
// one byte at a time so a short message is never held back waiting for more.
func (f *frameReader) octetCount() (count int, ok bool, err error) {
	const maxDigits = 9
	for n := 1; n <= maxDigits+1; n++ {
		b, err := f.r.Peek(n)
		if err != nil {
			if len(b) == n-1 && n > 1 && errors.Is(err, io.EOF) {
				return 0, false, nil // a bare number at EOF: let line() take it
			}
			return 0, false, err
		}
		c := b[n-1]
		if c >= '0' && c <= '9' {
			if n == 1 && c == '0' {
				return 0, false, nil
			}
			count = count*10 + int(c-'0')
			continue
		}
		if c == ' ' && n > 1 {
			if _, err := f.r.Discard(n); err != nil {
				return 0, false, err
			}
			return count, true, nil
		}
		return 0, false, nil
	}
	// Ten digits and no space: no sane frame is that long, and there is no
	// way to tell where the next message starts.
	return 0, false, fmt.Errorf("%w: length field longer than %d digits", errBadFrame, maxDigits)
}

// line reads up to '\n'. An over-long line is consumed to its end and
// reported as errTooLong so the messages after it still arrive.
func (f *frameReader) line() ([]byte, error) {
	f.buf = f.buf[:0]
	tooLong := false
	for {
		chunk, err := f.r.ReadSlice('\n')
		if !tooLong {
			if len(f.buf)+len(chunk) > f.max+2 { // +2: the CR LF we strip
				tooLong = true
				f.buf = f.buf[:0]
			} else {
				f.buf = append(f.buf, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) && (len(f.buf) > 0 || tooLong) {
				break // the last message had no newline
			}
			return nil, err
		}
		break
	}
	msg := syslogmsg.TrimTrailingControl(f.buf)
	if tooLong || len(msg) > f.max {
		return nil, errTooLong
	}
	return msg, nil
}
