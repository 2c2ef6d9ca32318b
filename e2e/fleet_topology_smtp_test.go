//go:build e2e

package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/colinmarc/cdb"

	"github.com/relaygate/relaygate/cdbwriter"
)

// client returns a fresh client address.
func (tp *topology) client() string {
	tp.nextC++
	if tp.nextC > topoRelaySrc {
		tp.t.Fatalf("more than %d client addresses", topoRelaySrc)
	}
	return topoClient(tp.nextC)
}

// loginAt logs in to Dovecot on host with POP3 (USER/PASS) or IMAP (LOGIN)
// from src, then logs out.
func loginAt(imap bool, host, src, user, pass string) (loginResult, error) {
	port := topoPOP3
	if imap {
		port = topoIMAP
	}
	c, err := dialFrom(src, fmt.Sprintf("%s:%d", host, port))
	if err != nil {
		return loginResult{}, err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	line := func() (string, error) {
		s, err := r.ReadString('\n')
		return strings.TrimRight(s, "\r\n"), err
	}
	// until reads lines up to the one starting with prefix.
	until := func(prefix string) (string, error) {
		for {
			s, err := line()
			if err != nil || strings.HasPrefix(s, prefix) {
				return s, err
			}
		}
	}
	ok, greeting := "+OK", "+OK"
	if imap {
		ok, greeting = "a1 OK", "* OK"
	}
	if s, err := line(); err != nil || !strings.HasPrefix(s, greeting) {
		return loginResult{}, fmt.Errorf("greeting %q: %v", s, err)
	}
	var res loginResult
	if imap {
		res.Sent = time.Now()
		fmt.Fprintf(c, "a1 LOGIN %s %s\r\n", user, pass)
		res.Reply, err = until("a1 ")
	} else {
		fmt.Fprintf(c, "USER %s\r\n", user)
		if s, err := line(); err != nil || !strings.HasPrefix(s, "+OK") {
			return loginResult{}, fmt.Errorf("POP3 USER: %q: %v", s, err)
		}
		res.Sent = time.Now()
		fmt.Fprintf(c, "PASS %s\r\n", pass)
		res.Reply, err = line()
	}
	res.Answer = time.Now()
	if err != nil {
		return res, fmt.Errorf("login: %q: %v", res.Reply, err)
	}
	res.OK = strings.HasPrefix(res.Reply, ok)
	if imap {
		fmt.Fprintf(c, "a2 LOGOUT\r\n")
		_, _ = until("a2 ")
	} else {
		fmt.Fprintf(c, "QUIT\r\n")
		_, _ = line()
	}
	return res, nil
}

// deniedEverywhere checks that every MTA refuses to relay for src.
func (tp *topology) deniedEverywhere(t *testing.T, src string) {
	t.Helper()
	for _, m := range tp.mtas {
		r, err := rcptAt(m.smtp, src)
		if err != nil {
			t.Fatalf("%s: SMTP from %s: %v", m.name, src, err)
		}
		if r.Code != 554 || !strings.Contains(r.Text, deniedText) {
			t.Fatalf("%s: RCPT TO:<%s> from %s: %q, want 554 %s", m.name, relayRCPT, src, r, deniedText)
		}
	}
}

// relayed is when one login was relayed: each MTA's 250 and map, and
// the map of the login's own POP host.
type relayed struct {
	at, inMap []time.Time
	local     time.Time
}

// relayedEverywhere opens new SMTP sessions from src to every MTA at once
// (an open session keeps the map it started with) until each answers 250
// to RCPT TO a remote domain. It also notes when each MTA's map, and the
// map of pop (the login's POP host), had src, to tell which part was
// slow. With gated, the sessions to an MTA start only once its map has
// src (smtpd cannot say 250 before): under load the probes then cost
// the fleet a few sessions rather than a hundred a second.
func (tp *topology) relayedEverywhere(src string, pop *topoPOP, within time.Duration, gated bool) (relayed, error) {
	r := relayed{at: make([]time.Time, len(tp.mtas)), inMap: make([]time.Time, len(tp.mtas))}
	fail := make([]error, len(tp.mtas))
	a := netip.MustParseAddr(src)
	deadline := time.Now().Add(within)
	waitMap := func(path string) time.Time {
		for ; time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if mapHas(path, a) {
				return time.Now()
			}
		}
		return time.Time{}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.local = waitMap(pop.rg.mapPath) }()
	for i, m := range tp.mtas {
		inMap := make(chan struct{})
		wg.Add(2)
		go func() { defer wg.Done(); r.inMap[i] = waitMap(m.rg.mapPath); close(inMap) }()
		go func() {
			defer wg.Done()
			if gated {
				<-inMap
			}
			var last smtpResult
			var lastErr error
			for ; time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				last, lastErr = rcptAt(m.smtp, src)
				if lastErr == nil && last.Code == 250 {
					r.at[i] = time.Now()
					return
				}
			}
			fail[i] = fmt.Errorf("%s: no 250 for %s within %s (last %q, %v); its relaygate:\n%s", m.name, src, within, last, lastErr, tail(m.rg.log, 10))
		}()
	}
	wg.Wait()
	return r, errors.Join(fail...)
}

// mapHas looks a up in the cdb map at path, as Postfix does: one lookup,
// not a read of the whole map (fleetNode.has), which would take CPU from
// the fleet being measured once the map holds the load's grants.
func mapHas(path string, a netip.Addr) bool {
	db, err := cdb.Open(path)
	if err != nil {
		return false
	}
	defer db.Close()
	v, err := db.Get([]byte(cdbwriter.Key(a)))
	return err == nil && v != nil
}
