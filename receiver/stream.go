package receiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// The TCP and TLS listeners: accept refuses what -allow, -max-conns and
// -max-conns-per-host forbid before reading a byte; every accepted
// connection gets a goroutine reading its messages (framing.go splits
// them).

// accept serves one TCP or TLS listener. A sender outside -allow is refused
// before anything else, so it never gets to a TLS handshake.
func (r *Receiver) accept(ctx context.Context, wg *sync.WaitGroup, ln *net.TCPListener, transport string, out chan<- Message) {
	backoff := 5 * time.Millisecond
	for {
		conn, err := ln.AcceptTCP()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off instead of spinning (go-syslog's
			// accept loop retries at full speed).
			r.warnf("accept", "", "accept failed: "+err.Error())
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		ap := conn.RemoteAddr().(*net.TCPAddr).AddrPort()
		if !r.allowed(ap) {
			r.stats.notAllowed.Add(1)
			r.stats.connsNotAllowed.Add(1)
			r.warnf("not_allowed", ap.Addr().Unmap().String(), "refused connection from a sender outside -allow")
			conn.Close()
			continue
		}
		switch r.track(conn, hostKey(ap)) {
		case trackClosed:
			conn.Close()
			return
		case trackHostFull:
			r.stats.connsRefusedPerHost.Add(1)
			r.warnf("per_host", ap.String(), fmt.Sprintf("refused %s connection: its sender already has %d TCP and TLS connections open (-max-conns-per-host)", transport, r.cfg.MaxConnsPerHost))
			conn.Close()
			continue
		case trackFull:
			r.stats.connsRefused.Add(1)
			r.warnf("max_conns", ap.String(), fmt.Sprintf("refused %s connection: %d connections already open (-max-conns)", transport, r.cfg.MaxConns))
			conn.Close()
			continue
		}
		r.stats.connectionsAccepted.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.untrack(conn)
			src := source{transport: transport, peer: ap.String(), addr: ap}
			if transport == "tls" {
				r.serveTLS(ctx, conn, src, out)
				return
			}
			r.readStream(ctx, conn, src, out)
		}()
	}
}

// readStream reads one TCP or TLS connection's messages until it ends, is
// idle for IdleTimeout, or its framing can't be followed.
func (r *Receiver) readStream(ctx context.Context, conn net.Conn, src source, out chan<- Message) {
	fr := newFrameReader(conn, r.cfg.maxMessage)
	name := strings.ToUpper(src.transport)
	for {
		if r.cfg.IdleTimeout > 0 {
			_ = conn.SetReadDeadline(time.Now().Add(r.cfg.IdleTimeout))
		}
		raw, err := fr.next()
		switch {
		case err == nil:
		case errors.Is(err, errTooLong):
			r.stats.tooLong.Add(1)
			r.warnf("too_long", src.peer, fmt.Sprintf("skipped a %s message over %d bytes, the message size limit; the connection goes on", name, r.cfg.maxMessage))
			continue
		case errors.Is(err, errTruncated):
			r.stats.malformed.Add(1)
			r.warnf("truncated_frame", src.peer, "TCP connection ended inside an octet-counted frame; its rest was dropped")
			return
		case errors.Is(err, errBadFrame):
			r.stats.malformed.Add(1)
			r.warnf("bad_frame", src.peer, "closed "+name+" connection: "+err.Error())
			return
		case r.cfg.IdleTimeout > 0 && errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil:
			r.stats.idleClosed.Add(1)
			// Routine (rsyslog and syslog-ng reconnect when they next
			// have something to send): rate-limited, at info level.
			r.infof("idle", src.peer, fmt.Sprintf("closed %s connection idle for %s (-idle-timeout)", name, r.cfg.IdleTimeout))
			return
		default:
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) && !isEOF(err) {
				r.log.Debug().Err(err).Str("peer", src.peer).Msg(src.transport + " connection ended")
			}
			return
		}
		if src.transport == "tls" {
			r.stats.tls.Add(1)
		} else {
			r.stats.tcp.Add(1)
		}
		if !r.deliver(ctx, raw, src, out) {
			return
		}
	}
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
