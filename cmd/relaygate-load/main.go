// Command relaygate-load sends a realistic syslog stream to a relaygate (or
// to its own reference receiver) over UDP or TCP, so throughput and loss can
// be measured as a ratio against what this machine's loopback delivers.
//
//	relaygate-load -target udp://127.0.0.1:5514 -count 1000000 -rate 100000
//	relaygate-load -reference 127.0.0.1:5599 -target udp://127.0.0.1:5599 -count 1000000
//
// About 4% of the messages are successful Dovecot/Courier logins from
// distinct IPv4 and IPv6 addresses, 2% failed logins, the rest Postfix and
// Dovecot noise, as a busy mail host's `*.* @relaygate` forwards it.
//
// It also measures what a relaygate made of the stream (see measure.go):
// -verify-map checks that every login of the stream reached the map,
// -probe-every times single logins from their sending to their appearance
// in the map, and -rss-pid follows a process's resident memory.
// docs/BENCHMARKS.md has the commands behind every published figure.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/relaygate/relaygate/receiver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "relaygate-load:", err)
		os.Exit(1)
	}
}

type config struct {
	target     string
	count      int
	rate       int
	loginPct   float64
	failedPct  float64
	seed       uint64
	reference  string
	addrsOut   string
	v6Pct      float64
	user       string
	hosts      int
	refTimeout time.Duration
	refBuf     int
	measure    measureConfig
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var c config
	fs := flag.NewFlagSet("relaygate-load", flag.ContinueOnError)
	fs.StringVar(&c.target, "target", "udp://127.0.0.1:5514", "where to send: udp://HOST:PORT, tcp://HOST:PORT (newline framing), file://PATH (a log file for relaygate parse), or unixgram://PATH (a local syslog socket such as journald's /run/systemd/journal/dev-log; the HOSTNAME is left out, as syslog(3) writes)")
	fs.IntVar(&c.count, "count", 100000, "messages to send")
	fs.IntVar(&c.rate, "rate", 0, "messages per second; 0 sends flat out")
	fs.Float64Var(&c.loginPct, "logins", 4, "percent of messages that are successful logins")
	fs.Float64Var(&c.failedPct, "failed", 2, "percent of messages that are failed logins")
	fs.Float64Var(&c.v6Pct, "ipv6", 20, "percent of login addresses that are IPv6")
	fs.StringVar(&c.user, "user", "u%d", "user `pattern` of the logins: %d is replaced by the login's sequence number (e.g. user%d@example.org)")
	fs.IntVar(&c.hosts, "hosts", 1, "syslog host names the logins come from (mx1 … mxN), each reporting both daemons")
	fs.Uint64Var(&c.seed, "seed", 1, "random seed (the stream is reproducible)")
	fs.StringVar(&c.reference, "reference", "", "also run the reference receiver on this UDP `address` (a plain socket loop that only counts datagrams)")
	fs.DurationVar(&c.refTimeout, "reference-quiet", 500*time.Millisecond, "the reference receiver stops after this long without a datagram")
	fs.IntVar(&c.refBuf, "reference-rcvbuf", receiver.DefaultUDPReadBuffer, "receive buffer `bytes` of the reference receiver, set as relaygate's -udp-rcvbuf is")
	fs.StringVar(&c.addrsOut, "addrs-out", "", "write every login address in the stream to this `file`, one per line")
	c.measure.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	network, addr, ok := strings.Cut(c.target, "://")
	if !ok || (network != "udp" && network != "tcp" && network != "file" && network != "unixgram") {
		return fmt.Errorf("-target %q: want udp://HOST:PORT, tcp://HOST:PORT, file://PATH or unixgram://PATH", c.target)
	}
	if c.count < 0 || (c.count == 0 && c.measure.probes == 0) {
		return errors.New("-count must be positive (or 0 with -probes: probe logins only)")
	}
	if err := c.measure.check(); err != nil {
		return err
	}
	if strings.Count(c.user, "%d") != 1 || strings.ContainsAny(c.user, "<>, \t\n") {
		return fmt.Errorf("-user %q: want exactly one %%d and none of <>, space, tab, newline", c.user)
	}
	if c.hosts < 1 {
		return errors.New("-hosts must be at least 1")
	}

	var ref *referenceReceiver
	if c.reference != "" {
		var err error
		if ref, err = startReference(c.reference, c.refTimeout, c.refBuf); err != nil {
			return err
		}
	}

	var conn io.WriteCloser
	var err error
	if network == "file" {
		conn, err = os.Create(addr)
	} else {
		conn, err = net.Dial(network, addr)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	if u, ok := conn.(*net.UDPConn); ok {
		_ = u.SetWriteBuffer(4 << 20)
	}
	var w io.Writer = conn
	var bw *bufio.Writer
	if network == "unixgram" {
		w = localSyslog{conn}
	} else if network != "udp" {
		bw = bufio.NewWriterSize(conn, 256<<10)
		w = bw
	}

	gen := newGenerator(c)
	m := startMeasures(c.measure)
	start := time.Now()
	sent, err := send(ctx, c, gen, m.probes, w, network == "udp" || network == "unixgram")
	if bw != nil {
		if ferr := bw.Flush(); err == nil {
			err = ferr
		}
	}
	elapsed := time.Since(start)
	if err != nil {
		m.stop()
		return err
	}
	fmt.Fprintf(stdout, "sent %d messages over %s in %v: %.0f msg/s\n", sent, network, elapsed.Round(time.Millisecond), float64(sent)/elapsed.Seconds())
	fmt.Fprintf(stdout, "logins %d (distinct addresses %d), failed logins %d, noise %d\n",
		gen.logins, len(gen.addrs), gen.failed, sent-gen.logins-gen.failed)
	if c.addrsOut != "" {
		if err := writeAddrs(c.addrsOut, gen.addrs); err != nil {
			return err
		}
	}
	if ref != nil {
		n := ref.wait()
		fmt.Fprintf(stdout, "reference receiver counted %d datagrams (%.2f%% of sent); its receive buffer: %d bytes asked, %d granted\n",
			n, 100*float64(n)/float64(sent), ref.buf.Asked, ref.buf.Granted)
	}
	return m.report(ctx, stdout, gen.addrs)
}

// send writes c.count messages, pacing them in 1 ms slices when c.rate > 0,
// and the probe logins when they are due (see probeSet). It returns the
// number of stream messages sent, probes not counted.
func send(ctx context.Context, c config, gen *generator, probes *probeSet, w io.Writer, datagrams bool) (int, error) {
	buf := make([]byte, 0, 512)
	perSlice := 1000 // flat out: slices only to let probes in
	slice := time.Millisecond
	if c.rate > 0 {
		perSlice = max(1, c.rate/1000)
	}
	write := func(msg []byte) error {
		if !datagrams {
			msg = append(msg, '\n')
		}
		_, err := w.Write(msg)
		var errno syscall.Errno
		if datagrams && errors.As(err, &errno) && errno == syscall.ECONNREFUSED {
			return nil // an ICMP from an earlier datagram; the stream goes on
		}
		return err
	}
	next := time.Now()
	sent := 0
	for sent < c.count || (c.count == 0 && probes.remaining()) {
		if ctx.Err() != nil {
			return sent, ctx.Err()
		}
		if c.count == 0 {
			// Probes only: an idle relaygate.
			time.Sleep(probes.wait())
		}
		if line, ok := probes.due(buf[:0]); ok {
			// TCP buffers: flush first, or the probe would wait for the
			// next 256 KiB of stream and time the sender's buffer.
			if f, ok := w.(interface{ Flush() error }); ok {
				if err := f.Flush(); err != nil {
					return sent, err
				}
			}
			probes.sent()
			if err := write(line); err != nil {
				return sent, err
			}
			if f, ok := w.(interface{ Flush() error }); ok {
				if err := f.Flush(); err != nil {
					return sent, err
				}
			}
		}
		for i := 0; i < perSlice && sent < c.count; i++ {
			buf = gen.next(buf[:0])
			if err := write(buf); err != nil {
				return sent, err
			}
			sent++
		}
		if c.rate > 0 && sent < c.count {
			next = next.Add(slice)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
	}
	return sent, nil
}

func writeAddrs(path string, addrs []netip.Addr) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, a := range addrs {
		w.WriteString(a.String())
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// referenceReceiver is the yardstick: the least a UDP receiver can do — read
// and count — with the same socket buffer relaygate asks for.
type referenceReceiver struct {
	conn  *net.UDPConn
	buf   receiver.ReadBuffer
	count atomic.Int64
	done  chan struct{}
}

func startReference(addr string, quiet time.Duration, rcvbuf int) (*referenceReceiver, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("reference receiver: %w", err)
	}
	r := &referenceReceiver{conn: conn, done: make(chan struct{})}
	if r.buf, err = receiver.SetReadBuffer(conn, rcvbuf); err != nil {
		conn.Close()
		return nil, fmt.Errorf("reference receiver: %w", err)
	}
	go func() {
		defer close(r.done)
		buf := make([]byte, 65536)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(quiet))
			if _, _, err := conn.ReadFromUDPAddrPort(buf); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && r.count.Load() == 0 {
					continue // nothing sent yet
				}
				return
			}
			r.count.Add(1)
		}
	}()
	return r, nil
}

// wait returns the count once the stream has gone quiet.
func (r *referenceReceiver) wait() int64 {
	<-r.done
	r.conn.Close()
	return r.count.Load()
}

// localSyslog writes each message as syslog(3) does to a local socket:
// "<PRI>TIMESTAMP TAG: TEXT", without the HOSTNAME the stream carries
// (journald would read it as the program tag).
type localSyslog struct{ w io.Writer }

func (l localSyslog) Write(msg []byte) (int, error) {
	// The generator's lines are "<PRI>Mmm dd hh:mm:ss HOST TAG…".
	if i := bytes.IndexByte(msg, '>'); i > 0 && len(msg) > i+17 && msg[i+16] == ' ' {
		if j := bytes.IndexByte(msg[i+17:], ' '); j > 0 {
			out := append(append(make([]byte, 0, len(msg)), msg[:i+17]...), msg[i+18+j:]...)
			_, err := l.w.Write(out)
			return len(msg), err
		}
	}
	return l.w.Write(msg)
}
