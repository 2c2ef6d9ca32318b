// Package relptest is a RELP client for tests outside receiver/relp (the
// daemon's): it opens a session as librelp 1.11's client does (rsyslog's
// omrelp), sends syslog frames with transaction numbers from 1, and reads
// the server's answers. It checks only what a test needs; receiver/relp's
// own tests read the frames with the server's strict reader.
package relptest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// LibrelpOffers is what librelp 1.11's client offers in its open.
const LibrelpOffers = "relp_version=0\nrelp_software=http://librelp.adiscon.com,1.11.0,librelp\ncommands=syslog"

// Frame is one frame the server sent: an answer ("rsp") or a hint
// ("serverclose", TXNR 0).
type Frame struct {
	Txnr    uint32
	Command string
	Data    string
}

// Client is one RELP session.
type Client struct {
	conn net.Conn
	r    *bufio.Reader
	txnr uint32
}

// Dial connects to a RELP server over TCP.
func Dial(addr string) (*Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return New(conn), nil
}

// New speaks RELP over conn (a TLS connection, say).
func New(conn net.Conn) *Client { return &Client{conn: conn, r: bufio.NewReader(conn)} }

// Close closes the connection without RELP's close command.
func (c *Client) Close() error { return c.conn.Close() }

// Send sends a command with the next transaction number and returns that
// number.
func (c *Client) Send(cmd, data string) (uint32, error) {
	c.txnr++
	frame := strconv.FormatUint(uint64(c.txnr), 10) + " " + cmd + " " + strconv.Itoa(len(data))
	if data != "" {
		frame += " " + data
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(c.conn, frame+"\n")
	return c.txnr, err
}

// Syslog sends one syslog message.
func (c *Client) Syslog(msg string) (uint32, error) { return c.Send("syslog", msg) }

// Open opens the session with librelp's offers and checks that the server
// answers 200 and offers the syslog command.
func (c *Client) Open(within time.Duration) error {
	txnr, err := c.Send("open", LibrelpOffers)
	if err != nil {
		return err
	}
	f, err := c.Read(within)
	if err != nil {
		return err
	}
	if f.Txnr != txnr || f.Command != "rsp" || !strings.HasPrefix(f.Data, "200 OK") || !strings.Contains(f.Data, "commands=syslog") {
		return fmt.Errorf("open answered %+v", f)
	}
	return nil
}

// Read reads the server's next frame, waiting at most within.
func (c *Client) Read(within time.Duration) (Frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(within))
	var f Frame
	txnr, err := c.r.ReadString(' ')
	if err != nil {
		return f, err
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(txnr, " "), 10, 32)
	if err != nil {
		return f, fmt.Errorf("bad TXNR %q", txnr)
	}
	f.Txnr = uint32(n)
	if f.Command, err = c.r.ReadString(' '); err != nil {
		return f, err
	}
	f.Command = strings.TrimSuffix(f.Command, " ")
	var size []byte
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			return f, err
		}
		if b == ' ' || b == '\n' {
			length, err := strconv.Atoi(string(size))
			if err != nil {
				return f, fmt.Errorf("bad DATALEN %q", size)
			}
			if b == '\n' {
				if length != 0 {
					return f, errors.New("DATALEN without DATA")
				}
				return f, nil
			}
			data := make([]byte, length+1)
			if _, err := io.ReadFull(c.r, data); err != nil {
				return f, err
			}
			if data[length] != '\n' {
				return f, errors.New("no LF after DATA")
			}
			f.Data = string(data[:length])
			return f, nil
		}
		size = append(size, b)
	}
}

// IsTimeout reports whether err is Read's deadline passing.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
