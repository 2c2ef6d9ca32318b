package parsers

import "testing"

func TestCourier(t *testing.T) {
	runCases(t, courier{}, []parseCase{
		{"real pop3", "pop3d", "LOGIN, user=alice, ip=[::ffff:127.0.0.2], port=[51871]", "login|127.0.0.2|alice|127.0.0.2/51871"},
		{"imap protocol", "imapd-ssl", "LOGIN, user=a@example.org, ip=[::ffff:192.0.2.10], port=[50412], protocol=IMAP", "login|192.0.2.10|a@example.org|192.0.2.10/50412"},
		{"v6 stls", "pop3d", "LOGIN, user=b, ip=[2001:db8::25], port=[40001], stls=1", "login|2001:db8::25|b|2001:db8::25/40001"},
		{"old no port", "courierpop3login", "LOGIN, user=c, ip=[192.0.2.11]", "login|192.0.2.11|c|"},
		{"order", "imapd", "LOGIN, ip=[192.0.2.12], user=d", "login|192.0.2.12|d|"},
		{"user with equals", "imapd", "LOGIN, user=a=b, ip=[192.0.2.13]", "login|192.0.2.13|a=b|"},

		{"inject", "imapd", "LOGIN, user=x, ip=[203.0.113.66], ip=[::ffff:192.0.2.14], port=[1]", "refused"},
		{"no ip", "imapd", "LOGIN, user=x, port=[1]", "refused"},
		{"unbracketed", "imapd", "LOGIN, user=x, ip=192.0.2.15", "refused"},
		{"mapped unspecified", "imapd", "LOGIN, user=x, ip=[::ffff:0.0.0.0]", "refused"},

		{"failed", "pop3d", "LOGIN FAILED, user=a, ip=[::ffff:192.0.2.1], port=[1]", "nomatch"},
		{"failed method", "imapd", "LOGIN FAILED, method=PLAIN, ip=[::ffff:192.0.2.1], port=[1]", "nomatch"},
		{"failed with comma", "imapd", "LOGIN, FAILED, user=a, ip=[::ffff:192.0.2.1]", "nomatch"},
		{"no comma", "imapd", "LOGIN user=a, ip=[::ffff:192.0.2.1]", "nomatch"},
		{"logout", "imapd", "LOGOUT, user=a, ip=[::ffff:192.0.2.1], port=[1]", "logout|192.0.2.1|a|192.0.2.1/1"},
		{"front-end logout", "imapd", "LOGOUT, ip=[::ffff:192.0.2.1], port=[1], rcvd=1, sent=2", "nomatch"},
		{"logout without port", "imapd", "LOGOUT, user=a, ip=[::ffff:192.0.2.1]", "nomatch"},
		{"logout two ips", "imapd", "LOGOUT, user=a, ip=[192.0.2.9], ip=[::ffff:192.0.2.1], port=[1]", "nomatch"},
		{"connection", "imapd", "Connection, ip=[::ffff:192.0.2.1], port=[1]", "nomatch"},
		{"timeout", "imapd", "TIMEOUT, user=a, ip=[::ffff:192.0.2.1], port=[7], headers=0", "logout|192.0.2.1|a|192.0.2.1/7"},
		{"disconnected", "imapd", "DISCONNECTED, user=a, ip=[2001:db8::1], port=[8], time=0", "logout|2001:db8::1|a|2001:db8::1/8"},
		{"lowercase", "imapd", "login, user=a, ip=[::ffff:192.0.2.1]", "nomatch"},
	})
}
