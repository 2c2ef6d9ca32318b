package main

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"strings"
)

// generator makes the message stream; it is deterministic for a seed.
type generator struct {
	rnd       *rand.Rand
	loginPct  float64
	failedPct float64
	v6Pct     float64
	userPre   string // the -user pattern before and after its %d
	userPost  string
	hosts     int
	seq       uint32
	logins    int
	failed    int
	addrs     []netip.Addr
}

func newGenerator(c config) *generator {
	pre, post, _ := strings.Cut(c.user, "%d")
	return &generator{
		rnd:       rand.New(rand.NewPCG(c.seed, c.seed^0x9e3779b97f4a7c15)),
		loginPct:  c.loginPct,
		failedPct: c.failedPct,
		v6Pct:     c.v6Pct,
		userPre:   pre,
		userPost:  post,
		hosts:     c.hosts,
	}
}

// nextAddr returns a new distinct address: a bijection of the sequence
// number into 10.0.0.0/8 or 2001:db8::/32, so addresses never repeat.
func (g *generator) nextAddr() netip.Addr {
	g.seq++
	x := g.seq * 2654435761 // odd multiplier: a permutation of uint32
	if g.rnd.Float64()*100 < g.v6Pct {
		var b [16]byte
		b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
		binary.BigEndian.PutUint32(b[12:], x)
		b[11] = 1
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{10, byte(x >> 16), byte(x >> 8), byte(x)})
}

var noise = []string{
	"<22>Nov 21 10:00:00 mx1 postfix/smtpd[2211]: connect from unknown[198.51.100.23]",
	"<22>Nov 21 10:00:00 mx1 postfix/smtpd[2211]: disconnect from unknown[198.51.100.23] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5",
	"<22>Nov 21 10:00:00 mx1 postfix/qmgr[901]: 4F2B31C0A2: from=<bounce@example.org>, size=4211, nrcpt=1 (queue active)",
	"<22>Nov 21 10:00:00 mx1 postfix/smtp[3310]: 4F2B31C0A2: to=<bob@example.net>, relay=mx.example.net[203.0.113.9]:25, delay=0.4, delays=0.01/0/0.2/0.19, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
	"<22>Nov 21 10:00:00 mx1 postfix/cleanup[3309]: 4F2B31C0A2: message-id=<20261121100000.4F2B31C0A2@mx1.example.org>",
	"<22>Nov 21 10:00:00 mx1 dovecot: imap(alice)<4711><kX3b8Qp7aMDAAAIK>: Disconnected: Logged out in=123 out=456",
	"<22>Nov 21 10:00:00 mx1 dovecot: lmtp(bob)<5000><Zz1>: msgid=<x@example.org>: saved mail to INBOX",
	"<30>Nov 21 10:00:00 mx1 systemd[1]: Started Session 42 of user alice.",
	"<86>Nov 21 10:00:00 mx1 sshd[777]: Accepted publickey for admin from 203.0.113.50 port 50122 ssh2",
	"<22>Nov 21 10:00:00 mx1 postfix/anvil[902]: statistics: max connection rate 1/60s for (smtp:198.51.100.23) at Nov 21 09:58:11",
}

func (g *generator) next(buf []byte) []byte {
	r := g.rnd.Float64() * 100
	switch {
	case r < g.loginPct:
		a := g.nextAddr()
		g.logins++
		g.addrs = append(g.addrs, a)
		host := uint32(1)
		if g.hosts > 1 {
			host = uint32(g.rnd.IntN(g.hosts) + 1)
		}
		if g.rnd.IntN(2) == 0 {
			buf = append(buf, "<22>Nov 21 10:00:00 mx"...)
			buf = appendUint(buf, host)
			buf = append(buf, " dovecot[812]: imap-login: Login: user=<"...)
			buf = g.appendUser(buf)
			buf = append(buf, ">, method=PLAIN, rip="...)
			buf = a.AppendTo(buf)
			buf = append(buf, ", lip=192.0.2.1, mpid=4711, TLS"...)
			return buf
		}
		buf = append(buf, "<22>Nov 21 10:00:00 mx"...)
		buf = appendUint(buf, host)
		buf = append(buf, " imapd-ssl: LOGIN, user="...)
		buf = g.appendUser(buf)
		buf = append(buf, ", ip=["...)
		if a.Is4() {
			buf = append(buf, "::ffff:"...)
		}
		buf = a.AppendTo(buf)
		buf = append(buf, "], protocol=IMAP"...)
		return buf
	case r < g.loginPct+g.failedPct:
		g.failed++
		buf = append(buf, "<22>Nov 21 10:00:00 mx1 dovecot[812]: pop3-login: Aborted login (auth failed, 1 attempts in 2 secs): user=<eve>, method=PLAIN, rip=203.0.113."...)
		buf = appendUint(buf, uint32(g.rnd.IntN(250)+1))
		buf = append(buf, ", lip=192.0.2.1, session=<Ab1>"...)
		return buf
	}
	return append(buf, noise[g.rnd.IntN(len(noise))]...)
}

// appendUser writes the current login's user name, the -user pattern.
func (g *generator) appendUser(buf []byte) []byte {
	buf = append(buf, g.userPre...)
	buf = appendUint(buf, g.seq)
	return append(buf, g.userPost...)
}

func appendUint(b []byte, v uint32) []byte {
	var tmp [10]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}
