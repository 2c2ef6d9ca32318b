package syslogmsg

// The PRI, "<" 1*3DIGIT ">", and the VERSION after it, which tells RFC
// 5424 from RFC 3164.

// skipPRI accepts "<0>" to "<191>" and returns the index after '>'.
func skipPRI(raw []byte) (int, bool) {
	end, pri := priEnd(raw)
	return end, end > 0 && pri <= 191
}

// priEnd reads a leading "<" 1*3DIGIT ">" and returns the offset after it
// and its value, or 0 when raw does not start with one.
func priEnd(raw []byte) (end, pri int) {
	if len(raw) < 3 || raw[0] != '<' {
		return 0, 0
	}
	for i := 1; i < len(raw) && i <= 4; i++ {
		switch c := raw[i]; {
		case isDigit(c):
			pri = pri*10 + int(c-'0')
		case c == '>' && i > 1:
			return i + 1, pri
		default:
			return 0, 0
		}
	}
	return 0, 0
}

// versionAfterPRI reports whether raw starts like an RFC 5424 message,
// "<" 1*3DIGIT ">" followed by a VERSION (1*3DIGIT) and SP, and where the
// VERSION starts, with the PRI's value. It is deliberately wider than what
// spans5424 accepts (a PRI over 191, version 2) and than go-syslog's own
// test (a single digit), so that nothing shaped like RFC 5424 reaches a
// 3164 reader either.
func versionAfterPRI(raw []byte) (v, pri int, ok bool) {
	v, pri = priEnd(raw)
	if v == 0 {
		return 0, 0, false
	}
	i := v
	for i < len(raw) && i-v < 4 && isDigit(raw[i]) {
		i++
	}
	if i == v || i-v > 3 || i >= len(raw) || raw[i] != ' ' {
		return 0, 0, false
	}
	return v, pri, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
