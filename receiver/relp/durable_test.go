package relp

import (
	"fmt"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/durable"
)

// TestDurableQueueWithSessions: the daemon's way (internal/daemon's
// ledger), with a real session: messages numbered as events, acks released
// by Durable in groups, answers in order.
func TestDurableQueueWithSessions(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.Addr())
	c.open()
	var acks durable.Queue
	var txnrs []uint32
	var seq uint64
	for i := range 10 {
		txnrs = append(txnrs, c.send(cmdSyslog, fmt.Sprint(i)))
		d := ts.next(t)
		if i%3 == 0 { // a login: a new event
			seq++
		}
		acks.Add(seq, d.Ack)
	}
	c.expectNothing(50 * time.Millisecond)
	acks.Durable(2) // covers messages 0..5
	for i := range 6 {
		c.expectRsp(txnrs[i], rspOK)
	}
	c.expectNothing(50 * time.Millisecond)
	acks.Durable(4)
	for i := 6; i < 10; i++ {
		c.expectRsp(txnrs[i], rspOK)
	}
}
