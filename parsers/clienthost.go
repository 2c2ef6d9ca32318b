package parsers

import "strings"

// cutClientHost splits a client host as Cyrus (global.c) and UW c-client
// (tcp_clienthost) build it, "[ip]", "name [ip]" or the older "name[ip]", off
// the front of s. It returns the text between the brackets and what follows
// the closing bracket. The name is a resolver-checked DNS name, so it may not
// contain a space or a bracket; anything else is not this shape. A missing
// "]" means the daemon truncated the field (UW logs host=%.80s): the text
// in the brackets could then be a shortened address, so that is refused too.
func cutClientHost(s string) (addr, rest string, ok bool) {
	open := strings.IndexByte(s, '[')
	if open < 0 {
		return "", "", false
	}
	name := s[:open]
	name = strings.TrimSuffix(name, " ")
	if strings.ContainsAny(name, " ]") {
		return "", "", false
	}
	end := strings.IndexByte(s[open+1:], ']')
	if end < 0 {
		return "", "", false
	}
	addr = s[open+1 : open+1+end]
	if strings.IndexByte(addr, '[') >= 0 {
		return "", "", false
	}
	return addr, s[open+1+end+1:], true
}
