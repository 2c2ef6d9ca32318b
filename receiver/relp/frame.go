package relp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The RELP frame (librelp's doc/relp.md, and its reader in relpframe.c):
//
//	RELP-FRAME = TXNR SP COMMAND SP DATALEN [SP DATA] LF
//	TXNR       = 1*9DIGIT        ; 0 is reserved for hints
//	COMMAND    = 1*32ALPHA
//	DATALEN    = 1*9DIGIT        ; the octets of DATA; DATALEN 0 has no SP and no DATA
//
// Like librelp, the reader takes digits with leading zeros, no other
// spelling of a number, exactly one SP between fields, and exactly one LF
// after the frame; anything else ends the session (the spec: "the peer that
// detects the problem closes the underlying connection").

// Protocol limits.
const (
	maxTxnr        = 999_999_999 // TXNR latches here; the next one is 1
	maxDigits      = 9           // of TXNR and DATALEN
	maxCommandLen  = 32
	maxOfferName   = 32  // librelp's RELP_MAX_OFFER_FEATURENAME
	maxOfferValue  = 255 // RELP_MAX_OFFER_FEATUREVALUE
	maxOfferValues = 64  // RELP_MAX_OFFER_VALUES
)

// nextTxnr is the transaction number expected after t: they count up from
// 1 and wrap from 999,999,999 to 1 (0 is for hints).
func nextTxnr(t uint32) uint32 {
	if t >= maxTxnr {
		return 1
	}
	return t + 1
}

// Reasons a frame is refused. Each is a value of the reason label of
// relaygate_relp_sessions_closed_total.
const (
	reasonBadTxnr    = "bad_txnr"    // TXNR missing, not digits, or more than 9 of them
	reasonBadCommand = "bad_command" // COMMAND empty, not letters, or over 32 of them
	reasonBadDatalen = "bad_datalen" // DATALEN missing, not digits, over 9 digits, or not followed by SP/LF
	reasonBadTrailer = "bad_trailer" // no LF right after the frame
	reasonTooLong    = "too_long"    // a frame other than syslog with DATALEN over the message limit
	reasonTruncated  = "truncated"   // the connection ended inside a frame
)

// frameError is a frame the reader cannot follow; the session ends with it.
type frameError struct {
	reason string // one of the reason constants
	detail string
}

func (e *frameError) Error() string { return "relp frame: " + e.reason + ": " + e.detail }

func badFrame(reason, format string, args ...any) error {
	return &frameError{reason: reason, detail: fmt.Sprintf(format, args...)}
}

// frameReason returns the reason of a frame error, and false for any other
// error (I/O, deadline).
func frameReason(err error) (string, bool) {
	var fe *frameError
	if errors.As(err, &fe) {
		return fe.reason, true
	}
	return "", false
}

// frame is one frame read. Data is valid until the next read.
type frame struct {
	txnr    uint32
	command string // one of the known commands, or "" for another (then raw holds it)
	raw     []byte // the COMMAND as sent, for an unknown command only
	data    []byte
	// skipped is the DATALEN of a syslog frame over the size limit: its
	// DATA was read and dropped (data is nil), and the stream is still in
	// step, as the TCP listener skips an over-long message.
	skipped int
}

// The commands relaygate serves; every other one ends the session.
const (
	cmdOpen   = "open"
	cmdSyslog = "syslog"
	cmdClose  = "close"
)

func knownCommand(b []byte) string {
	switch string(b) { // no allocation: the compiler compares in place
	case cmdOpen:
		return cmdOpen
	case cmdSyslog:
		return cmdSyslog
	case cmdClose:
		return cmdClose
	}
	return ""
}

// frameReader reads frames from a RELP stream.
type frameReader struct {
	r   *bufio.Reader
	max int // largest DATALEN kept; a larger syslog frame is skipped, any other ends the session
	buf []byte
	cmd [maxCommandLen]byte
}

func newFrameReader(r io.Reader, max int) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 32*1024), max: max}
}

// next reads one frame. It returns io.EOF when the stream ends between
// frames, a *frameError when the stream cannot be followed (a stream that
// ends inside a frame is reasonTruncated), and other errors as the
// connection reported them.
func (f *frameReader) next() (frame, error) {
	var fr frame
	// TXNR: its first byte may be the first of the stream's end.
	c, err := f.r.ReadByte()
	if err != nil {
		return fr, err
	}
	txnr, c, err := f.number(c, reasonBadTxnr, "TXNR")
	if err != nil {
		return fr, err
	}
	if c != ' ' {
		return fr, badFrame(reasonBadTxnr, "%q after TXNR, want SP", c)
	}
	fr.txnr = uint32(txnr)

	// COMMAND
	n := 0
	for {
		if c, err = f.byte(); err != nil {
			return fr, err
		}
		if c == ' ' {
			break
		}
		if !isAlpha(c) {
			return fr, badFrame(reasonBadCommand, "%q in COMMAND", c)
		}
		if n == maxCommandLen {
			return fr, badFrame(reasonBadCommand, "COMMAND longer than %d letters", maxCommandLen)
		}
		f.cmd[n] = c
		n++
	}
	if n == 0 {
		return fr, badFrame(reasonBadCommand, "empty COMMAND")
	}
	if fr.command = knownCommand(f.cmd[:n]); fr.command == "" {
		fr.raw = f.cmd[:n]
	}

	// DATALEN
	if c, err = f.byte(); err != nil {
		return fr, err
	}
	datalen, c, err := f.number(c, reasonBadDatalen, "DATALEN")
	if err != nil {
		return fr, err
	}
	if datalen == 0 {
		// No DATA, no SP: the LF follows at once (librelp checks the
		// trailer right there).
		if c != '\n' {
			return fr, badFrame(reasonBadTrailer, "%q after DATALEN 0, want LF", c)
		}
		fr.data = f.buf[:0]
		return fr, nil
	}
	if c != ' ' {
		return fr, badFrame(reasonBadDatalen, "%q after DATALEN, want SP", c)
	}

	// DATA
	if datalen > f.max {
		if fr.command != cmdSyslog {
			return fr, badFrame(reasonTooLong, "DATALEN %d over the limit of %d", datalen, f.max)
		}
		if _, err := f.r.Discard(datalen); err != nil {
			return fr, truncated(err)
		}
		fr.skipped = datalen
	} else {
		if cap(f.buf) < datalen {
			f.buf = make([]byte, datalen, max(datalen, 2*cap(f.buf)))
		}
		fr.data = f.buf[:datalen]
		if _, err := io.ReadFull(f.r, fr.data); err != nil {
			return frame{}, truncated(err)
		}
	}

	// TRAILER
	if c, err = f.byte(); err != nil {
		return frame{}, err
	}
	if c != '\n' {
		return frame{}, badFrame(reasonBadTrailer, "%q after %d octets of DATA, want LF", c, datalen)
	}
	return fr, nil
}

// number reads 1 to 9 digits, c being the first byte; it returns the value
// and the byte after the digits.
func (f *frameReader) number(c byte, reason, field string) (int, byte, error) {
	if !isDigit(c) {
		return 0, 0, badFrame(reason, "%q where %s begins, want a digit", c, field)
	}
	v := 0
	for n := 0; ; n++ {
		if n == maxDigits {
			return 0, 0, badFrame(reason, "%s longer than %d digits", field, maxDigits)
		}
		v = v*10 + int(c-'0')
		var err error
		if c, err = f.byte(); err != nil {
			return 0, 0, err
		}
		if !isDigit(c) {
			return v, c, nil
		}
	}
}

// byte reads a byte inside a frame, where the stream's end is a truncation.
func (f *frameReader) byte() (byte, error) {
	c, err := f.r.ReadByte()
	if err != nil {
		return 0, truncated(err)
	}
	return c, nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return badFrame(reasonTruncated, "the connection ended inside a frame")
	}
	return err
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// appendFrame appends a frame to b; data may be empty (DATALEN 0).
func appendFrame(b []byte, txnr uint32, command string, data []byte) []byte {
	b = strconv.AppendUint(b, uint64(txnr), 10)
	b = append(b, ' ')
	b = append(b, command...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(data)), 10)
	if len(data) > 0 {
		b = append(b, ' ')
		b = append(b, data...)
	}
	return append(b, '\n')
}

// appendRsp appends the "rsp" frame answering txnr with text (a status,
// "200 OK" or "500 …", optionally followed by LF and command data).
func appendRsp(b []byte, txnr uint32, text string) []byte {
	b = strconv.AppendUint(b, uint64(txnr), 10)
	b = append(b, " rsp "...)
	b = strconv.AppendInt(b, int64(len(text)), 10)
	b = append(b, ' ')
	b = append(b, text...)
	return append(b, '\n')
}

// serverCloseHint is the hint librelp's server sends before it closes a
// session (relpSessSrvDoDisconnect): TXNR 0, no response expected.
const serverCloseHint = "0 serverclose 0\n"

// rspOK answers a syslog (and close) command.
const rspOK = "200 OK"
