package parsers

import (
	"net/netip"
	"strings"
	"testing"
)

// dovecotFormats are the formats FuzzDovecotElements writes lines in: the
// default, 2.4's spelling of it, and site formats with the user elsewhere.
var dovecotFormats = []string{
	DefaultDovecotLogFormat,
	"user=<%{user}> method=%{mechanism} rip=%{remote_ip} lip=%{local_ip} mpid=%{mail_pid} %{secured} session=<%{session}>",
	"rip=%r user=<%u> lip=%l method=%m session=<%{session}>",
	"method=%m user=%u orig=<%{orig_user}> rip=%r %c",
	"user=<%u> method=%m %c rip=%r session=<%{session}>",
}

// dvCanon names the variables the fuzzed formats use by one name each.
var dvCanon = map[string]string{
	"u": "user", "user": "user", "r": "rip", "remote_ip": "rip", "l": "lip", "local_ip": "lip",
	"m": "mech", "mechanism": "mech", "e": "mpid", "mail_pid": "mpid", "c": "secured", "secured": "secured",
	"session": "session", "orig_user": "orig_user",
}

// writeDovecotElements is a model of Dovecot's client_get_log_str: expand
// each element, leave out one whose variables all came out empty unless it
// names the user, join with ", " (only after text). vals maps a variable's
// dvCanon name to its value.
func writeDovecotElements(format string, vals map[string]string) string {
	var b strings.Builder
	for _, word := range strings.Fields(format) {
		var e, empty strings.Builder
		isUser := false
		for i := 0; i < len(word); i++ {
			if word[i] != '%' {
				e.WriteByte(word[i])
				empty.WriteByte(word[i])
				continue
			}
			i++
			name := word[i : i+1]
			if word[i] == '{' {
				end := strings.IndexByte(word[i:], '}')
				name = word[i+1 : i+end]
				i += end
			}
			c := dvCanon[name]
			e.WriteString(vals[c])
			isUser = isUser || c == "user"
		}
		if !isUser && e.String() == empty.String() {
			continue
		}
		b.WriteString(e.String())
		if b.Len() > 0 {
			b.WriteString(", ")
		}
	}
	return strings.TrimSuffix(b.String(), ", ")
}

// FuzzDovecotElements writes login lines as Dovecot would, with a fuzzed
// user name (which may spell whole elements), a remote IP or none, and
// checks the property the grammar exists for: a granted address is the
// line's genuine rip, never text from the user name.
func FuzzDovecotElements(f *testing.F) {
	f.Add(uint8(0), "x>, rip=203.0.113.66, <", "", "PLAIN", "secured", "370BBGphAAAAAAAA", "")
	f.Add(uint8(0), "x>, method=PLAIN, rip=203.0.113.66, mpid=1, TLS: e", "192.0.2.7", "PLAIN", "secured", "S", "")
	f.Add(uint8(0), "x>, method=PLAIN, rip=203.0.113.66, mpid=1, TLS", "", "PLAIN", "secured", "S", "")
	f.Add(uint8(1), "a, b=c>", "2001:db8::1", "PLAIN", "TLS", "S", "")
	f.Add(uint8(2), "x>, lip=1.2.3.4, method=PLAIN, session=<a>, rip=203.0.113.66, user=<y", "", "PLAIN", "", "q", "")
	f.Add(uint8(3), "x, orig=<y>, rip=203.0.113.66, TLS", "", "PLAIN", "TLS", "", "z")
	f.Add(uint8(3), "x", "192.0.2.1", "PLAIN", "TLS", "", "y>, rip=203.0.113.66, <z")
	f.Add(uint8(4), "x>, method=PLAIN, TLS, rip=203.0.113.66, session=<q", "", "PLAIN", "TLS", "q", "")
	secureds := []string{"", "secured", "TLS", "TLS handshaking", "TLS: ", "TLS handshaking: "}
	f.Fuzz(func(t *testing.T, which uint8, user, rip, mech, secured, session, orig string) {
		format := dovecotFormats[int(which)%len(dovecotFormats)]
		// Dovecot's own values have their own shapes; only the user
		// names (and the TLS error) are client text.
		if rip != "" {
			a, err := netip.ParseAddr(rip)
			if err != nil || a.Zone() != "" {
				return
			}
			rip = a.String()
		}
		if mech == "" || strings.ContainsAny(mech, ", %") || strings.ContainsAny(session, ", ") {
			return
		}
		sec := secureds[len(secured)%len(secureds)]
		if strings.HasSuffix(sec, ": ") {
			sec += secured
		}
		d, err := NewDovecot(format)
		if err != nil {
			t.Fatal(err)
		}
		lip := ""
		if rip != "" {
			lip = "192.0.2.1" // Dovecot has both addresses or neither
		}
		line := writeDovecotElements(format, map[string]string{
			"user": user, "orig_user": orig, "rip": rip, "lip": lip, "mech": mech,
			"mpid": "4711", "secured": sec, "session": session,
		})
		ev, err := d.Parse(Message{Program: "dovecot", Text: "imap-login: Login: " + line})
		if err != nil {
			// Completeness: a line no user text can make ambiguous grants,
			// in the formats whose only free text before the rip is a user
			// name in <...> (the first three; in the others a bare user=%u,
			// or a TLS error before the rip, is ambiguous by itself).
			if _, aerr := parseAddr(rip); aerr == nil && int(which)%len(dovecotFormats) < 3 &&
				!strings.ContainsAny(user+orig+sec+mech+session, ">,=") &&
				!strings.EqualFold(mech, "ANONYMOUS") {
				t.Fatalf("format %q line %q: refused (%v), but it reads only one way", format, line, err)
			}
			return
		}
		if rip == "" {
			t.Fatalf("format %q line %q: granted %v, but Dovecot logged no rip", format, line, ev.Addr)
		}
		want, werr := parseAddr(rip)
		if werr != nil || ev.Addr != want {
			t.Fatalf("format %q line %q: granted %v, the genuine rip is %q", format, line, ev.Addr, rip)
		}
		if !strings.Contains(line, "rip="+rip) {
			t.Fatalf("format %q line %q: granted %v, not a rip element of the line", format, line, ev.Addr)
		}
	})
}

// FuzzDovecotFormat compiles fuzzed login_log_format_elements values and
// reads fuzzed lines by them: no panic, and a grant is always an address
// the line itself spells.
func FuzzDovecotFormat(f *testing.F) {
	for _, format := range dovecotFormats {
		f.Add(format, "user=<a>, method=PLAIN, rip=192.0.2.1, lip=192.0.2.2, mpid=1, TLS, session=<S>")
	}
	f.Add("%u rip=%r %m", "a, rip=192.0.2.1, PLAIN")
	f.Add("x%{passdb:foo}y rip=%r %m %%", "xy, rip=192.0.2.1, M, %")
	f.Fuzz(func(t *testing.T, format, text string) {
		d, err := NewDovecot(format)
		if err != nil {
			if d != (Dovecot{}) {
				t.Fatalf("error %v with a parser", err)
			}
			return
		}
		ev, err := d.Parse(Message{Program: "dovecot", Text: "imap-login: Login: " + text})
		if err != nil {
			return
		}
		if ev.Kind != Login || !ev.Addr.IsValid() {
			t.Fatalf("format %q text %q: event %+v", format, text, ev)
		}
		found := false
		for i := 0; i <= len(text) && !found; i++ {
			for j := i + 1; j <= len(text) && j-i <= 64 && !found; j++ {
				if a, err := parseAddr(text[i:j]); err == nil && a == ev.Addr {
					found = true
				}
			}
		}
		if !found {
			t.Fatalf("format %q text %q: granted %v, not in the line", format, text, ev.Addr)
		}
	})
}
