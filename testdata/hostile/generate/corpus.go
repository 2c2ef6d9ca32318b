package main

import "strings"

// P is an RFC 3164 header as rsyslog forwards it.
const P = "<22>Nov 21 10:00:00 mx1 "

// R is an RFC 5424 header up to the APP-NAME.
const R = "<22>1 2026-11-21T10:00:00.000001+00:00 mx1 "

// DL is a genuine Dovecot success line without its address.
const DL = "dovecot[812]: imap-login: Login: user=<bob>, method=PLAIN, "

// DA is a genuine Dovecot failure line with the attacker's address.
const DA = "dovecot[812]: imap-login: Aborted login (auth failed, 1 attempts in 2 secs): user=<mallory>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1, session=<f1>"

// build adds every message of the corpus, by category.
func build(c *corpus) {
	c.cat = "framing"
	c.add("crash-pri-only", "go-syslog v2.3.0 crash input: a PRI and nothing else", "<13>")
	c.add("crash-pri-header-no-tag", "go-syslog v2.3.0 crash input: header ends after the hostname", "<13>Nov 21 10:00:00 host")
	c.add("crash-negative-octet-count", "go-syslog v2.3.0 crash input: negative octet count (panics its splitter)", "-5 <13>abc")
	c.add("pri-only-zero", "PRI 0 and nothing else", "<0>")
	c.add("pri-only-191-newline", "highest valid PRI, then a newline: an empty second line on TCP", "<191>\n")
	c.add("empty", "zero bytes (an empty datagram; an empty line on TCP; not sent octet-counted, RFC 6587 has no empty frame)", "")
	c.add("whitespace-only", "blanks and tabs only", " \t \t  ")
	c.add("truncated-mid-address", "Dovecot success line cut inside rip= (6.6.6 is no address)", P+DL+"rip=6.6.6")
	c.add("truncated-mid-key", "Dovecot success line cut inside the key rip=", P+DL+"ri")
	c.add("truncated-in-timestamp", "cut inside the timestamp", "<22>Nov 21 10:0")
	c.add("truncated-in-tag", "cut inside the program tag", "<22>Nov 21 10:00:00 mx1 dovec")
	c.add("truncated-ipv6", "Dovecot success line cut inside an IPv6 address", P+DL+"rip=2001:db8::6:")
	c.add("unclosed-pri", "PRI without '>' before a failure line", "<22Nov 21 10:00:00 mx1 "+DA)
	c.add("nine-digit-octet-count", "starts with a 9-digit count: newline-framed TCP reads it as a 123456789-byte frame", "123456789 "+P+DL+"rip=6.6.6.6, lip=192.0.2.1, mpid=1, session=<o1>")
	c.add("ten-digit-octet-count", "10-digit length field: no sane frame; relaygate closes that TCP connection", "1234567890 <13>Nov 21 10:00:00 mx1 dovecot: x")
	c.add("twenty-digit-octet-count", "length field that overflows int64", "99999999999999999999 <13>abc")
	c.add("octet-count-lies", "length field larger than the message that follows", "500 "+P+DA)
	c.add("octet-count-without-message", "a length field and nothing else", "12 ")
	c.add("leading-zero-octet-count", "length with a leading zero: not a valid count, read as a line", "0012 <13>abc")
	c.add("embedded-newline-in-user", "Dovecot success line with a newline inside user=<...>: on TCP the address half arrives as its own untagged line", P+"dovecot[812]: imap-login: Login: user=<x\n, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1, mpid=2, session=<n1>")
	c.add("cr-joined-lines", "a failure line and an unusable login joined by a bare CR", P+DA+"\r"+P+DL+"rip=0.0.0.0, lip=192.0.2.1")
	c.add("two-messages-one-datagram", "a failure line and a login with a multicast address in one datagram, newline-separated", P+DA+"\n"+P+DL+"rip=224.0.0.1, lip=192.0.2.1")

	c.cat = "bytes"
	c.add("nul-in-address", "NUL right after the address", P+DL+"rip=6.6.6.6\x00, lip=192.0.2.1, mpid=3")
	c.add("nul-in-tag", "NUL inside the program tag", P+"dove\x00cot[812]: imap-login: Login: user=<bob>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1")
	c.add("nul-before-pri", "a NUL before an otherwise valid failure line", "\x00"+P+DA)
	c.add("all-nul", "256 NUL bytes", strings.Repeat("\x00", 256))
	c.add("control-bytes", "every C0 control byte and DEL", func() string {
		var b []byte
		for c := 1; c < 0x20; c++ {
			b = append(b, byte(c))
		}
		return string(append(b, 0x7f))
	}())
	c.add("ansi-escapes-in-user", "terminal escape sequences in a failure line's user name", P+"dovecot[812]: imap-login: Disconnected (auth failed, 1 attempts): user=<\x1b[2J\x1b[31mroot\x1b]0;pwned\x07>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1")
	c.add("backspace-in-address", "backspace inside the address", P+DL+"rip=6.6.\x086.6, lip=192.0.2.1")
	c.add("tab-after-address", "a tab glued to the address", P+DL+"rip=6.6.6.6\t, lip=192.0.2.1")
	c.add("invalid-utf8-in-address", "a 0xff byte inside the address", P+DL+"rip=6.6.6.\xff6, lip=192.0.2.1")
	c.add("invalid-utf8-in-tag", "a 0xff byte inside the program tag", P+"dovecot\xff[812]: imap-login: Login: user=<bob>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1")
	c.add("invalid-utf8-everywhere", "high bytes and truncated UTF-8 sequences around a login-like text", "\xc3\x28<22>\xe2\x82Nov 21 10:00:00 \xf0\x9f\x98 dovecot[812]: \xed\xa0\x80imap-login: Login: rip=\xc0\xaf6.6.6.6")
	c.add("fullwidth-digits-address", "address written with fullwidth digits (U+FF16)", P+DL+"rip=６.６.６.６, lip=192.0.2.1")
	c.add("bom-before-pri", "UTF-8 BOM before the PRI of a failure line", "\xef\xbb\xbf"+P+DA)
	c.add("utf16le", "a Dovecot login line encoded as UTF-16LE", func() string {
		s := P + DL + "rip=6.6.6.6, lip=192.0.2.1"
		var b []byte
		for i := 0; i < len(s); i++ {
			b = append(b, s[i], 0)
		}
		return string(b)
	}())

	c.cat = "pri"
	c.add("huge-pri", "20-digit PRI on a failure line", "<99999999999999999999>Nov 21 10:00:00 mx1 "+DA)
	c.add("pri-192", "PRI just above the RFC maximum of 191", "<192>Nov 21 10:00:00 mx1 "+DA)
	c.add("negative-pri", "negative PRI", "<-1>Nov 21 10:00:00 mx1 "+DA)
	c.add("non-numeric-pri", "letters in the PRI", "<abc>Nov 21 10:00:00 mx1 "+DA)
	c.add("empty-pri", "<> as PRI", "<>Nov 21 10:00:00 mx1 "+DA)
	c.add("pri-with-unusable-login", "20-digit PRI on a login with the unspecified address", "<99999999999999999999>Nov 21 10:00:00 mx1 "+DL+"rip=0.0.0.0, lip=192.0.2.1")

	c.cat = "timestamp"
	c.add("bad-month", "month Foo", "<22>Foo 21 10:00:00 mx1 "+DA)
	c.add("hour-99", "time 99:99:99", "<22>Nov 21 99:99:99 mx1 "+DA)
	c.add("feb-30", "February 30th", "<22>Feb 30 10:00:00 mx1 "+DA)
	c.add("rfc5424-year-99999", "RFC 5424 date 99999-13-45T25:61:61Z on a multicast login", "<22>1 99999-13-45T25:61:61Z mx1 dovecot 812 - - imap-login: Login: user=<bob>, method=PLAIN, rip=224.0.0.1, lip=192.0.2.1")
	c.add("rfc3339-garbage-in-3164", "rsyslog high-precision stamp with impossible fields", "<22>2026-13-45T99:99:99.999999999999+99:99 mx1 "+DA)
	c.add("timestamp-only", "PRI and timestamp, nothing else", "<22>Nov 21 10:00:00")
	c.add("negative-year", "RFC 5424 date -0001", "<22>1 -0001-01-01T00:00:00Z mx1 "+strings.Replace(DA, "[812]:", " 812 - -", 1))

	c.cat = "size"
	big := func(n int, head, tail string) string {
		return head + strings.Repeat("A", n-len(head)-len(tail)) + tail
	}
	c.add("over-64k-address-first", "70,000-byte Dovecot login with the address before a huge user name: if a receiver truncated instead of skipping, the cut line would grant 6.6.6.6", big(70000, P+"dovecot[812]: imap-login: Login: rip=6.6.6.6, method=PLAIN, user=<", ">, lip=192.0.2.1"))
	c.add("over-64k-address-last", "70,000-byte Dovecot login, address at the end", big(70000, P+"dovecot[812]: imap-login: Login: user=<", ">, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1"))
	c.add("quarter-mib-line", "256 KiB of one character, four times the receive buffer", strings.Repeat("x", 256<<10))
	c.add("exactly-65536", "a failure line padded to exactly 64 KiB (the largest message accepted on TCP)", big(65536, P+"dovecot[812]: imap-login: Aborted login (auth failed, 1 attempts in 2 secs): user=<", ">, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1"))
	c.add("exactly-65537", "a failure line one byte over 64 KiB", big(65537, P+"dovecot[812]: imap-login: Aborted login (auth failed, 1 attempts in 2 secs): user=<", ">, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1"))
	c.add("udp-max-65507", "a failure line of 65,507 bytes, the largest IPv4 UDP payload", big(65507, P+"dovecot[812]: imap-login: Aborted login (auth failed, 1 attempts in 2 secs): user=<", ">, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1"))
	c.add("long-tag", "a 10,000-character program tag", P+strings.Repeat("d", 10000)+"[1]: imap-login: Login: user=<bob>, method=PLAIN, rip=6.6.6.6")
	c.add("many-rip-elements", "3,000 rip= elements (injection and quadratic-work probe)", P+DL+strings.Repeat("rip=6.6.6.6, ", 3000)+"lip=192.0.2.1")
	c.add("deep-angle-nesting", "20,000 '<' in user=<...> followed by rip=", P+"dovecot[812]: imap-login: Login: user=<"+strings.Repeat("<", 20000)+", rip=6.6.6.6, lip=192.0.2.1")
	c.add("many-sd-params", "RFC 5424 structured data with 5,000 parameters, then a failure line", R+"dovecot 812 - [x@1"+strings.Repeat(` p="v"`, 5000)+"] imap-login: Aborted login (auth failed): user=<m>, rip=6.6.6.6, lip=192.0.2.1")

	c.cat = "addr"
	for _, a := range []struct{ name, addr, desc string }{
		{"ipv4-octet-256", "256.6.6.6", "an octet over 255"},
		{"ipv4-leading-zeros", "006.006.006.006", "leading zeros (octal to inet_aton)"},
		{"ipv4-single-integer", "101058054", "one integer (6.6.6.6 to inet_aton)"},
		{"ipv4-hex-octets", "0x06.0x06.0x06.0x06", "hexadecimal octets"},
		{"ipv4-three-octets", "6.6.6", "three octets"},
		{"ipv4-with-port", "6.6.6.6:110", "address with a port"},
		{"ipv4-cidr", "6.6.6.0/24", "a network, not an address"},
		{"ipv4-leading-space", " 6.6.6.6", "a blank before the address"},
		{"ipv6-zone-link-local", "fe80::1%eth0", "link-local with a zone id"},
		{"ipv6-zone-global", "2001:db8::666%eth0", "global address with a zone id"},
		{"ipv6-zone-v4-mapped", "::ffff:6.6.6.6%lo", "IPv4-mapped address with a zone id"},
		{"ipv6-zone-numeric", "2001:db8::666%2", "numeric zone id"},
		{"ipv6-nine-groups", "2001:db8:1:2:3:4:5:6:7", "nine groups"},
		{"ipv6-two-double-colons", "2001::db8::666", "two '::'"},
		{"ipv6-bad-hex", "2001:db8::g666", "a non-hex digit"},
		{"ipv6-unspecified", "::", "the unspecified address"},
		{"v4-mapped-unspecified", "::ffff:0.0.0.0", "IPv4-mapped 0.0.0.0"},
		{"v4-mapped-link-local", "::ffff:169.254.1.1", "IPv4-mapped link-local"},
		{"v4-mapped-broadcast", "::ffff:255.255.255.255", "IPv4-mapped broadcast"},
		{"broadcast", "255.255.255.255", "limited broadcast"},
		{"multicast-v4", "239.1.1.1", "IPv4 multicast"},
		{"multicast-v6", "ff02::1", "IPv6 multicast"},
		{"reserved-240", "240.0.0.1", "reserved 240.0.0.0/4"},
		{"this-network", "0.1.2.3", "\"this network\" 0.0.0.0/8"},
		{"link-local-v4", "169.254.6.6", "IPv4 link-local"},
		{"hostname", "evil.example", "a host name"},
		{"empty-address", "", "an empty rip="},
	} {
		c.add(a.name, "Dovecot success line, rip= is "+a.desc, P+DL+"rip="+a.addr+", lip=192.0.2.1, mpid=4, session=<a1>")
	}
	c.add("courier-empty-brackets", "Courier success line with ip=[]", P+"imapd: LOGIN, user=alice, ip=[], port=[50427], protocol=IMAP")
	c.add("courier-zone", "Courier success line with a zoned IPv6 address", P+"imapd: LOGIN, user=alice, ip=[fe80::1%eth0], port=[50424], protocol=IMAP")
	c.add("courier-port-in-brackets", "Courier success line with address:port inside the brackets", P+"pop3d: LOGIN, user=alice, ip=[::ffff:6.6.6.6:110], port=[110]")
	c.add("courier-unbracketed", "Courier success line without brackets around the address", P+"imapd: LOGIN, user=alice, ip=6.6.6.6, port=[50420]")

	c.cat = "field"
	c.add("dovecot-lip-only", "Dovecot success line with the server's lip= but no rip=", P+"dovecot[812]: imap-login: Login: user=<alice>, method=PLAIN, lip=6.6.6.6, mpid=4806")
	c.add("dovecot-rip-in-session", "rip= only inside session=<...>", P+"dovecot[812]: imap-login: Login: user=<alice>, method=PLAIN, session=<rip=6.6.6.6>, lip=192.0.2.1")
	c.add("zimbra-ip-without-oip", "Zimbra success line with the proxy's ip= and no oip=", P+"mailboxlog: 2018-09-18 00:22:03,100 INFO  [ImapServer-143] [name=alice@example.org;ip=6.6.6.6;] imap - user alice@example.org authenticated, mechanism=LOGIN")
	c.add("perdition-no-client", "perdition Auth line with only the backend server's address", P+`perdition.imaps[2233]: Auth: client-secure=ssl authorisation_id=NONE authentication_id="alice" server="6.6.6.6:993" protocol=IMAP4S server-secure=ssl status="ok"`)
	c.add("teapop-local-only", "teapop success line with only the local address", P+"teapop[17852]: Successful login for alice [6.6.6.6]")
	c.add("cyrus-address-as-user", "Cyrus login with [unknown] host and the address in the user field", P+"cyrus/imap[5371]: login: [unknown] 6.6.6.6 plaintext User logged in SESSIONID=<mx1-5371-1>")
	c.add("uw-address-as-user", "UW login whose user= is an address and host is UNKNOWN", P+"imapd[721]: Login user=6.6.6.6 host=UNKNOWN")
	c.add("qpopper-address-only-in-hostname", "Qpopper login with the address only in the (hostname) part", P+`in.qpopper[7602]: (v4.0.9) POP login by user "alice" at (6.6.6.6) client.example.net`)
	c.add("courier-address-in-port", "Courier success line with the address in port=[...]", P+"imapd: LOGIN, user=alice, port=[6.6.6.6], protocol=IMAP")

	c.cat = "tag"
	c.add("sshd-dovecot-text", "a Dovecot success line under sshd", P+"sshd[1]: imap-login: Login: user=<alice>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1, mpid=1, session=<x>")
	c.add("smtpd-courier-text", "a Courier success line under postfix/smtpd", P+"postfix/smtpd[2]: LOGIN, user=x, ip=[6.6.6.6], port=[25]")
	c.add("cyrillic-o-dovecot", "program tag dоvecot with a Cyrillic о", P+"dоvecot[812]: imap-login: Login: user=<alice>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1")
	c.add("tag-prefix-lookalike", "program tag dovecot-evil", P+"dovecot-evil[812]: imap-login: Login: user=<alice>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1")
	c.add("tag-only-in-text", "a kernel line whose text starts with a Dovecot tag", P+"kernel: dovecot[812]: imap-login: Login: user=<alice>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1")
	c.add("rfc5424-sshd-app", "RFC 5424 APP-NAME sshd with a Dovecot success text", R+"sshd 1 - - imap-login: Login: user=<alice>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1")
	c.add("rfc5424-nil-app", "RFC 5424 NILVALUE APP-NAME, text starts with \"dovecot: \"", R+"- - - - dovecot: imap-login: Login: user=<alice>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1")
	c.add("vchkpw-smtp", "vpopmail SMTP AUTH success (not a mailbox login)", P+"vpopmail[970]: vchkpw-smtp: (CRAM-MD5) login success alice@example.org:6.6.6.6")
	c.add("vchkpw-smtps", "vpopmail SMTPS AUTH success", P+"vpopmail[971]: vchkpw-smtps: (PLAIN) login success alice@example.org:6.6.6.6")
	c.add("vchkpw-submission", "vpopmail submission AUTH success", P+"vpopmail[972]: vchkpw-submission: (PLAIN) login success alice@example.org:6.6.6.6")
	c.add("vchkpw-webmail", "vpopmail webmail login", P+"vpopmail[973]: vchkpw-webmail: (PLAIN) login success alice@example.org:6.6.6.6")
	c.add("qmail-smtpd-vchkpw-text", "a vpopmail success text under qmail-smtpd", P+"qmail-smtpd[981]: vchkpw-pop3: (PLAIN) login success alice@example.org:6.6.6.6")
	c.add("perditionx", "perdition success line under perditionx", P+`perditionx[2241]: Auth: 6.6.6.6:50412->192.0.2.5:993 client-secure=ssl authorisation_id=NONE authentication_id="alice" server="backend.example.org:993" protocol=IMAP4S server-secure=ssl status="ok"`)
	c.add("perdition-managesieve", "perdition success for MANAGESIEVE", P+`perdition[2228]: Auth: 6.6.6.6:50425->192.0.2.5:4190 client-secure=starttls authorisation_id=NONE authentication_id="alice" server="backend.example.org:4190" protocol=MANAGESIEVE server-secure=starttls status="ok"`)
	c.add("mailboxd-zimbra-text", "a Zimbra success line under mailboxd", P+"mailboxd: 2018-09-18 00:22:21,100 INFO  [ImapServer-153] [name=alice@example.org;ip=10.0.0.5;oip=6.6.6.6;] imap - user alice@example.org authenticated, mechanism=LOGIN")
	c.add("dovecot-submission-login", "Dovecot submission-login success (SMTP AUTH already)", P+"dovecot[812]: submission-login: Login: user=<alice>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1, mpid=4800, TLS, session=<s1>")
	c.add("dovecot-managesieve-login", "Dovecot managesieve-login success", P+"dovecot[812]: managesieve-login: Login: user=<alice>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1, mpid=4801, TLS, session=<s2>")
	c.add("cyrus-tag-dovecot-text", "a Dovecot success text under Cyrus' imap tag", P+"imap[2]: imap-login: Login: user=<alice>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1")
	c.add("imap4d-two-line", "GNU imap4d (not a supported daemon) connect and login lines in one datagram", P+"imap4d[3349]: Connect from 6.6.6.6\n"+P+"imap4d[3349]: User `x' logged in (source: system)")

	c.cat = "lookalike"
	c.add("dovecot-disconnected-auth-failed", "Dovecot: Disconnected (auth failed)", P+"dovecot[812]: pop3-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<eve>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1, session=<abd>")
	c.add("dovecot-aborted-login", "Dovecot: Aborted login", P+DA)
	c.add("dovecot-login-aborted", "Dovecot 2.4: Login aborted", P+"dovecot[812]: imap-login: Login aborted: Connection closed (auth failed, 3 attempts in 16 secs) (auth_failed): user=<mallory>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1, TLS, session=<f3>")
	c.add("dovecot-proxy-login-failed", "Dovecot proxy: Login failed", P+"dovecot[812]: imap-login: proxy(alice): Login failed to 10.0.0.2:143: Authentication failed: user=<alice>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1")
	c.add("dovecot-auth-mismatch", "Dovecot auth: Password mismatch", P+"dovecot[812]: auth: passwd-file(alice,6.6.6.6,<9dd5>): Password mismatch")
	c.add("dovecot-reason-quotes-success", "Dovecot disconnect reason quoting a success line", P+"dovecot[812]: imap-login: Disconnected: Login: user=<x>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1 (auth failed, 1 attempts in 2 secs): user=<x>, rip=203.0.113.66, lip=192.0.2.1")
	c.add("dovecot-anonymous", "Dovecot ANONYMOUS login", P+"dovecot[812]: imap-login: Login: user=<anonymous>, method=ANONYMOUS, rip=6.6.6.6, lip=192.0.2.1, mpid=4802, session=<s3>")
	c.add("dovecot-lowercase-login", "Dovecot login: in lower case", P+"dovecot[812]: imap-login: login: user=<alice>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1")
	c.add("dovecot-login-with-referral", "Dovecot Login with referral", P+"dovecot[812]: imap-login: Login with referral: user=<alice>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1")
	c.add("courier-login-failed", "Courier LOGIN FAILED", P+"pop3d: LOGIN FAILED, user=mallory, ip=[::ffff:6.6.6.6], port=[51880]")
	c.add("courier-login-comma-failed", "Courier LOGIN, FAILED", P+"pop3d: LOGIN, FAILED, user=mallory, ip=[::ffff:6.6.6.6], port=[50413]")
	c.add("courier-lowercase", "Courier login, in lower case", P+"imapd: login, user=alice, ip=[::ffff:6.6.6.6], port=[50418]")
	c.add("courier-timeout", "Courier TIMEOUT", P+"imapd: TIMEOUT, user=alice, ip=[::ffff:6.6.6.6], port=[50414], headers=0, body=0, rcvd=10, sent=300, time=1800")
	c.add("cyrus-badlogin", "Cyrus badlogin", P+"cyrus/imap[866]: badlogin: [6.6.6.6] plaintext (bob) [SASL(-13): authentication failure: checkpass failed]")
	c.add("cyrus-anonymous", "Cyrus anonymous login", P+"imap[5355]: login: [6.6.6.6] anonymous ANONYMOUS User logged in SESSIONID=<mx1-5355-1-9>")
	c.add("cyrus-logfmt-login-bad", "Cyrus 3.13 event=login.bad", P+`imap[5361]: event=login.bad r.clienthost="bad.example [6.6.6.6]" u.username=mallory login.mech=PLAIN error="authentication failure"`)
	c.add("cyrus-logfmt-goodbye", "Cyrus event=login.goodbye", P+"imap[5369]: event=login.goodbye r.clienthost=[6.6.6.6] u.username=alice login.mech=PLAIN")
	c.add("uw-login-failed", "UW Login failed", P+"imapd[667]: Login failed user=bob auth=bob host=bad.example [6.6.6.6]")
	c.add("uw-preauthenticated", "UW Preauthenticated", P+"imapd[705]: Preauthenticated user=alice host=[6.6.6.6]")
	c.add("uw-break-in", "UW SYSTEM BREAK-IN ATTEMPT", P+"imapd[712]: Login SYSTEM BREAK-IN ATTEMPT host=[6.6.6.6]")
	c.add("qpopper-password-incorrect", "Qpopper password incorrect", P+`in.qpopper[7598]: mallory at client.example.net (6.6.6.6): -ERR [AUTH] Password supplied for "mallory" is incorrect.`)
	c.add("qpopper-servicing-request", "Qpopper connect line (no login)", P+`in.qpopper[7597]: (v4.0.9) Servicing request from "client.example.net" at 6.6.6.6 [pop_init.c:1408]`)
	c.add("qpopper-no-version", "Qpopper login line without the (vX) prefix", P+`in.qpopper[7600]: POP login by user "alice" at (client.example.net) 6.6.6.6`)
	c.add("vm-pop3d-failed-auth", "vm-pop3d failed auth", P+"vm-pop3d[5140]: User 'mallory' - failed auth, from=6.6.6.6")
	c.add("vm-pop3d-logged-out", "vm-pop3d logged out", P+"vm-pop3d[5185]: User 'x' logged out from 6.6.6.6")
	c.add("popa3d-auth-failed", "popa3d Authentication failed with address", P+"popa3d[2233]: Authentication failed for mallory -- [6.6.6.6]")
	c.add("solid-pop3d-failed", "Solid POP3 authentication failed", P+"spop3d[4021]: authentication failed for user mallory - 6.6.6.6")
	c.add("solid-pop3d-not-authenticated", "Solid POP3 'not authenticated'", P+"spop3d[4047]: user x not authenticated - 6.6.6.6")
	c.add("gnu-pop3d-access-blocked", "GNU pop3d Access blocked", P+"pop3d[3333]: Access from 6.6.6.6 blocked.")
	c.add("teapop-failed", "teapop Failed login", P+"teapop[17850]: Failed login for mallory@example.org [192.0.2.5] from client.example.net [6.6.6.6]")
	c.add("tpop3d-auth-failure", "tpop3d authentication failure", P+"tpop3d[1234]: connection_do: client `[7]6.6.6.6/example.org': username `mallory': 1 authentication failures")
	c.add("vpopmail-password-fail", "vpopmail password fail", P+"vpopmail[960]: vchkpw-pop3: password fail mallory@example.org:6.6.6.6")
	c.add("vpopmail-fail-quotes-success", "vpopmail failure whose password quotes a success", P+"vpopmail[961]: vchkpw-pop3: password fail (pass: 'login success x@y:6.6.6.6') mallory@example.org:203.0.113.66")
	c.add("perdition-status-failed", "perdition status=\"failed\"", P+`perdition.imaps[2220]: Auth: 6.6.6.6:50420->192.0.2.5:993 client-secure=ssl authorisation_id=NONE authentication_id="mallory" server="backend.example.org:993" protocol=IMAP4S server-secure=ssl status="failed"`)
	c.add("perdition-status-failed-reason", "perdition status=\"failed: reason\"", P+`perdition.imaps[2220]: Auth: 6.6.6.6:50420->192.0.2.5:993 client-secure=ssl authorisation_id=NONE authentication_id="mallory" server="backend.example.org:993" protocol=IMAP4S server-secure=ssl status="failed: Re-Authentication Failure"`)
	c.add("zimbra-auth-failed", "Zimbra authentication failed", P+"mailboxlog: 2018-09-18 00:22:00,100 WARN  [ImapServer-140] [ip=10.0.0.5;oip=6.6.6.6;] imap - authentication failed for [mallory@example.org] (invalid password)")
	c.add("zimbra-debug-level", "Zimbra success shape at DEBUG level", P+"mailboxlog: 2018-09-18 00:22:07,100 DEBUG [ImapServer-146] [name=alice@example.org;ip=10.0.0.5;oip=6.6.6.6;] imap - user alice@example.org authenticated, mechanism=LOGIN")
	c.add("apple-mail-failed", "Apple Mail log on failed", P+`AppleMailServer[311]: IMAP User "mallory" log on failed from 6.6.6.6`)
	c.add("cucipop-auth-failure", "cucipop authentication failure", P+"cucipop[4720]: authentication failure mallory 6.6.6.6")

	c.cat = "inject"
	c.add("dovecot-user-with-rip", "Dovecot user=<x, rip=6.6.6.6> (the client chose that user name)", P+"dovecot[812]: imap-login: Login: user=<x, rip=6.6.6.6>, method=PLAIN, rip=203.0.113.66, lip=192.0.2.1, mpid=4803, session=<i1>")
	c.add("dovecot-user-closes-angle", "Dovecot user=<x>, rip=... injected before the real rip=", P+"dovecot[812]: imap-login: Login: user=<x>, rip=6.6.6.6, y=<z>, method=PLAIN, rip=203.0.113.66, lip=192.0.2.1, mpid=4804, session=<i2>")
	c.add("dovecot-user-only-rip", "Dovecot: the only rip= is inside the user name", P+"dovecot[812]: pop3-login: Login: user=<x, rip=6.6.6.6, z>, method=PLAIN, lip=192.0.2.1, mpid=4805")
	c.add("courier-user-with-ip", "Courier user name containing \", ip=[\"", P+"imapd: LOGIN, user=x, ip=[6.6.6.6], ip=[::ffff:203.0.113.66], port=[50416], protocol=IMAP")
	c.add("courier-user-with-port-and-ip", "Courier user name carrying a port and a second ip", P+"pop3d: LOGIN, user=x, ip=[::ffff:6.6.6.6], port=[1], ip=[::ffff:203.0.113.66], port=[50417]")
	c.add("uw-user-with-host", "UW user name containing host=[...]", P+"imapd[723]: Login user=x host=[6.6.6.6] host=[203.0.113.66]")
	c.add("cyrus-logfmt-user-with-clienthost", "Cyrus logfmt user name containing r.clienthost=", P+`imap[5365]: event=login.good session_id=mx1-5365-1 u.username="x r.clienthost=[6.6.6.6]" login.mech=PLAIN login.tls=0`)
	c.add("cyrus-second-address", "Cyrus login with a second [address] after the user", P+"imap[5367]: login: [203.0.113.66] x [6.6.6.6] plaintext User logged in")
	c.add("qpopper-user-with-quote", "Qpopper user name closing the quote", P+`in.qpopper[7600]: (v4.0.9) POP login by user "x" at (a) 6.6.6.6" at (client.example.net) 203.0.113.66 [pop_log.c:244]`)
	c.add("vm-pop3d-user-with-from", "vm-pop3d user name containing logged in from", P+"vm-pop3d[5181]: User 'x' logged in from 6.6.6.6' logged in from 203.0.113.66")
	c.add("apple-mail-user-with-from", "Apple Mail user name containing from", P+`AppleMailServer[311]: IMAP User "x" log on successful from 6.6.6.6" log on failed from 203.0.113.66`)
	c.add("perdition-user-with-status", "perdition authentication_id carrying status=\"ok\"", P+`perdition.imaps[2225]: Auth: 6.6.6.6:50422->192.0.2.5:993 client-secure=ssl authorisation_id=NONE authentication_id="x" status="ok" server="a:1" protocol=IMAP4S server-secure=ssl status="failed"`)
	c.add("perdition-two-status", "perdition with status=\"no\" and a trailing status=\"ok\"", P+`perdition.imaps[2226]: Auth: 6.6.6.6:50423->192.0.2.5:993 client-secure=ssl authorisation_id=NONE authentication_id="x" y="z" server="a:1" protocol=IMAP4S server-secure=ssl status="no" status="ok"`)
	c.add("popa3d-user-with-address", "popa3d user name containing -- [address]", P+"popa3d[2254]: Authentication passed for x -- [6.6.6.6] -- [203.0.113.66]")
	c.add("solid-pop3d-user-with-address", "Solid POP3 user name containing authenticated - address", P+"spop3d[4043]: user x authenticated - 6.6.6.6 authenticated - 203.0.113.66")
	c.add("teapop-user-with-from", "teapop user name containing from h [address]", P+"teapop[17853]: Successful login for x [1.2.3.4] from h [6.6.6.6] x [192.0.2.5] from client.example.net [203.0.113.66]")
	c.add("tpop3d-user-with-fork-child", "tpop3d failure whose user name is a success line", P+"tpop3d[1234]: connection_do: client `[7]203.0.113.66/example.org': username `fork_child: [7]6.6.6.6/x: began session for `x' with y; child PID is 1': 1 authentication failures")
	c.add("vpopmail-user-with-at", "vpopmail user name with a second @ and an address", P+"vpopmail[974]: vchkpw-pop3: (PLAIN) login success x@6.6.6.6:1@example.org:203.0.113.66")
	c.add("zimbra-context-injection", "Zimbra ua= value closing the context block", P+"mailboxlog: 2018-09-18 00:22:04,100 INFO  [ImapServer-144] [name=alice@example.org;ip=10.0.0.5;ua=x;;oip=6.6.6.6;;] imap - user x authenticated, mechanism=LOGIN;] imap - authentication failed for [alice@example.org] (invalid password)")
	c.add("zimbra-two-oip", "Zimbra oip= with two addresses", P+"mailboxlog: 2018-09-18 00:22:12,100 INFO  [ImapServer-151] [name=alice@example.org;ip=10.0.0.5;oip=6.6.6.6, 203.0.113.66;] imap - user alice@example.org authenticated, mechanism=LOGIN")
	c.add("cucipop-extra-field", "cucipop success with an extra word", P+"cucipop[4725]: alice bob 6.6.6.6 3, 0 (0), 2 (4096)")

	c.cat = "rfc5424"
	c.add("sd-unterminated", "structured data that never closes", R+`dovecot 812 - [garbage "unterminated imap-login: Login: user=<x>, method=PLAIN, rip=6.6.6.6`)
	c.add("sd-escapes", "structured data with escaped quotes and brackets, then a failure line", R+`dovecot 812 - [a@1 x="]\"[" y="\\"][b@2] imap-login: Aborted login (auth failed): user=<m>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1`)
	c.add("sd-no-id", "structured data [] with no SD-ID, then a Dovecot login with a multicast address", R+"dovecot 812 - [] imap-login: Login: user=<m>, method=PLAIN, rip=224.0.0.1, lip=192.0.2.1")
	c.add("version-2", "RFC 5424 VERSION 2", "<22>2 2026-11-21T10:00:00Z mx1 "+strings.Replace(DA, "[812]:", " 812 - -", 1))
	c.add("all-nil", "every RFC 5424 field NILVALUE", "<22>1 - - - - - -")
	c.add("missing-fields", "RFC 5424 header ends after APP-NAME", R+"dovecot")
	c.add("huge-procid", "a 300-character PROCID", R+"dovecot "+strings.Repeat("9", 300)+" - - imap-login: Aborted login (auth failed): user=<m>, method=PLAIN, rip=6.6.6.6, lip=192.0.2.1")
	c.add("huge-hostname", "a 1,000-character HOSTNAME", "<22>1 2026-11-21T10:00:00Z "+strings.Repeat("h", 1000)+" "+strings.Replace(DA, "[812]:", " 812 - -", 1))
	c.add("bom-and-controls-in-msg", "BOM then control bytes in MSG, Courier login with a zoned address", R+"imapd-ssl 4711 - - \xef\xbb\xbf\x01\x02LOGIN, user=alice, ip=[fe80::1%eth0], port=[50412], protocol=IMAP")
	c.add("courier-spoofed-app", "RFC 5424 Courier success text under imapd-sslx", R+"imapd-sslx 4711 - - LOGIN, user=alice, ip=[::ffff:6.6.6.6], port=[50412], protocol=IMAP")

	c.cat = "correlate"
	c.add("popa3d-session-from", "popa3d address line (pid 7001): never grants by itself", P+"popa3d[7001]: Session from 6.6.6.6")
	c.add("popa3d-auth-other-pid", "popa3d success line under a different PID (7002) than the address line", P+"popa3d[7002]: Authentication passed for alice")
	c.add("popa3d-auth-other-host", "popa3d success line from another host with the address line's PID", "<22>Nov 21 10:00:01 mx2 popa3d[7001]: Authentication passed for alice")
	c.add("gnu-pop3d-same-pid-other-program", "a GNU pop3d success line with popa3d's PID", P+"gnu-pop3d[7001]: User 'alice' logged in with mailbox '/var/mail/alice'")
	c.add("popa3d-no-pid-session", "popa3d address line without a PID", P+"popa3d: Session from 6.6.6.6")
	c.add("popa3d-no-pid-auth", "popa3d success line without a PID", P+"popa3d: Authentication passed for ken")
	c.add("vm-pop3d-connect", "vm-pop3d address line (pid 7020)", P+"vm-pop3d[7020]: Connect from 6.6.6.6")
	c.add("vm-pop3d-new-connection", "vm-pop3d new connection of the same PID: forgets the address", P+"vm-pop3d[7020]: Incoming connection opened")
	c.add("vm-pop3d-logged-in-after-reset", "vm-pop3d success line after the reset", P+"vm-pop3d[7020]: User 'judy' logged in")
	c.add("gnu-pop3d-connect", "GNU pop3d address line (pid 7040)", P+"gnu-pop3d[7040]: connect from 6.6.6.6")
	c.add("gnu-pop3d-auth-failed", "GNU pop3d authentication failed for that PID", P+"gnu-pop3d[7040]: user `mallory': authentication failed")
	c.add("gnu-pop3d-logged-in-after-failure", "GNU pop3d success line after the failure", P+"gnu-pop3d[7040]: user `mallory' logged in with mailbox `/var/mail/mallory' (0 messages)")
	c.add("solid-pop3d-connect", "Solid POP3 address line (pid 7030)", P+"spop3d[7030]: connect from 6.6.6.6")
	c.add("solid-pop3d-root-refused", "Solid POP3 root login not allowed for that PID", P+"spop3d[7030]: root login not allowed")
	c.add("solid-pop3d-auth-after-refusal", "Solid POP3 success line after the refusal", P+"spop3d[7030]: user root authenticated")
	c.add("popa3d-unusable-connect", "popa3d address line with a zoned address, then a success line of that PID", P+"popa3d[7050]: Session from fe80::1%eth0\n"+P+"popa3d[7050]: Authentication passed for judy")
}
