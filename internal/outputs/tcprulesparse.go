package outputs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// tcpRule is one compiled rule: a key tcpserver looks up and the data
// tcprules stores for it ("D\0" for deny, then "+NAME=value\0" for each
// environment variable).
type tcpRule struct{ key, data []byte }

// parseTCPRules compiles rules in tcprules(1)'s format exactly as tcprules
// does, so the site's tcp.smtp keeps meaning what it meant: one rule a
// line, "address:instructions" with no extra spaces; lines starting with #
// and lines without a colon are skipped (tcprules skips them silently);
// trailing blanks are dropped; the instructions are allow or deny, then
// ,NAME="value" items (any quote character); an IPv4 address whose last
// given octet is a range (10.0.1.2-5, 10.0.1-3.) is one key per number. A
// line tcprules would refuse is an error naming the line.
func parseTCPRules(src []byte) ([]tcpRule, error) {
	var out []tcpRule
	for n := 1; len(src) > 0; n++ {
		line := src
		if i := bytes.IndexByte(src, '\n'); i >= 0 {
			line, src = src[:i], src[i+1:]
		} else {
			src = nil
		}
		if len(line) > 0 && line[0] == '#' {
			continue
		}
		line = bytes.TrimRight(line, " \t")
		colon := ruleColon(line)
		if colon < 0 {
			continue
		}
		data, err := compileInstructions(line[colon+1:])
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", n, line, err)
		}
		keys, err := expandAddress(line[:colon])
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", n, line, err)
		}
		for _, k := range keys {
			out = append(out, tcpRule{key: k, data: data})
		}
	}
	return out, nil
}

// ruleColon finds the colon that ends a rule's address: the first one
// followed by allow or deny (IPv6 addresses have colons of their own, as
// the IPv6 build of tcprules allows), else the first one; -1 if none.
func ruleColon(line []byte) int {
	first := bytes.IndexByte(line, ':')
	for i := first; i >= 0 && i < len(line); {
		rest := line[i+1:]
		if bytes.HasPrefix(rest, []byte("allow")) || bytes.HasPrefix(rest, []byte("deny")) {
			return i
		}
		j := bytes.IndexByte(rest, ':')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return first
}

var errBadInstructions = errors.New(`instructions must be allow or deny, then ,NAME="value" items, with no spaces`)

// compileInstructions turns allow|deny[,NAME="value"]... into tcprules's
// data.
func compileInstructions(x []byte) ([]byte, error) {
	var data []byte
	switch {
	case bytes.HasPrefix(x, []byte("deny")):
		data = append(data, 'D', 0)
		x = x[4:]
	case bytes.HasPrefix(x, []byte("allow")):
		x = x[5:]
	default:
		return nil, errBadInstructions
	}
	for len(x) > 0 {
		if x[0] != ',' {
			return nil, errBadInstructions
		}
		eq := bytes.IndexByte(x, '=')
		if eq < 0 || eq+1 >= len(x) {
			return nil, errBadInstructions
		}
		data = append(data, '+')
		data = append(data, x[1:eq+1]...)
		quote := x[eq+1]
		x = x[eq+2:]
		end := bytes.IndexByte(x, quote)
		if end < 0 {
			return nil, errBadInstructions
		}
		data = append(data, x[:end]...)
		data = append(data, 0)
		x = x[end+1:]
	}
	return data, nil
}

// expandAddress is tcprules's doaddressdata: an address without = or @
// and with a "-" is a range of the number around it, the rest kept.
func expandAddress(addr []byte) ([][]byte, error) {
	dash := bytes.IndexByte(addr, '-')
	if dash < 0 || bytes.IndexByte(addr, '=') >= 0 || bytes.IndexByte(addr, '@') >= 0 {
		return [][]byte{addr}, nil
	}
	left := bytes.LastIndexByte(addr[:dash], '.') + 1
	right := len(addr)
	if j := bytes.IndexByte(addr[dash+1:], '.'); j >= 0 {
		right = dash + 1 + j
	}
	bot, err1 := tcpNum(addr[left:dash])
	top, err2 := tcpNum(addr[dash+1 : right])
	if err1 != nil || err2 != nil {
		return nil, errors.New("a range must be numbers, such as 10.0.1.2-5")
	}
	top = min(top, 255)
	var keys [][]byte
	for n := bot; n <= top; n++ {
		k := append([]byte(nil), addr[:left]...)
		k = strconv.AppendUint(k, n, 10)
		keys = append(keys, append(k, addr[right:]...))
	}
	return keys, nil
}

// tcpNum is tcprules's getnum: decimal digits only, none being 0.
func tcpNum(b []byte) (uint64, error) {
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, strconv.ErrSyntax
		}
		n = n*10 + uint64(c-'0')
		if n > 1<<32 {
			return 0, strconv.ErrRange
		}
	}
	return n, nil
}
