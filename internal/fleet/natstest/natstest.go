// Package natstest runs the real nats-server (Debian's package) for tests:
// one JetStream server, or a cluster, on loopback ports, each with a
// private directory, stopped by PID when the test ends. Without the
// program a test is skipped, and fails under CI. It is imported by tests
// only.
package natstest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relaygate/relaygate/internal/testutil"
)

// Server is one nats-server process.
type Server struct {
	Name        string
	Dir         string // its store, configuration and log
	Port        int    // client port on 127.0.0.1
	ClusterPort int    // 0 unless clustered
	Conf        string // the configuration file

	t    testing.TB
	bin  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Options shape the servers' configuration.
type Options struct {
	// Extra is appended to each server's configuration: an
	// authorization block, tls { … }, accounts.
	Extra string
	// Scheme of URL: "nats" (default) or "tls".
	Scheme string
}

// Program returns the nats-server binary, or skips the test (fails it
// under CI).
func Program(t testing.TB) string {
	return testutil.RequireProgram(t, "nats-server", "apt-get install nats-server")
}

// FreePorts returns n TCP ports free on 127.0.0.1 at the moment, below
// the kernel's ephemeral range (32768 and up on Linux): a server stopped
// and started again on its port must find it free, and a port from the
// ephemeral range can be taken meanwhile as the local port of any
// outgoing connection of the tests running beside it.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	const low, high = 20000, 32768
	var lns []net.Listener
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			t.Fatalf("no free port in %d–%d after %d tries", low, high-1, tries)
		}
		port := low + rand.IntN(high-low)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		lns = append(lns, ln)
		ports = append(ports, port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// Start runs one JetStream server and waits until it accepts clients.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin := Program(t)
	ports := FreePorts(t, 1)
	s := &Server{Name: "n0", Dir: t.TempDir(), Port: ports[0], t: t, bin: bin}
	s.writeConf(o, "")
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// StartCluster runs n JetStream servers clustered on loopback.
func StartCluster(t testing.TB, n int, o Options) []*Server {
	t.Helper()
	bin := Program(t)
	ports := FreePorts(t, 2*n)
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[n+i]))
	}
	var out []*Server
	for i := range n {
		s := &Server{Name: fmt.Sprintf("n%d", i), Dir: t.TempDir(), Port: ports[i], ClusterPort: ports[n+i], t: t, bin: bin}
		s.writeConf(o, fmt.Sprintf("cluster { name: rg\n listen: 127.0.0.1:%d\n routes: [%s] }\n", s.ClusterPort, strings.Join(routes, ", ")))
		out = append(out, s)
	}
	for _, s := range out {
		s.Start()
		t.Cleanup(s.Kill)
	}
	return out
}

func (s *Server) writeConf(o Options, cluster string) {
	conf := fmt.Sprintf("server_name: %s\nlisten: 127.0.0.1:%d\njetstream { store_dir: %q }\n%s%s\n",
		s.Name, s.Port, filepath.Join(s.Dir, "js"), cluster, o.Extra)
	s.Conf = filepath.Join(s.Dir, "nats.conf")
	if err := os.WriteFile(s.Conf, []byte(conf), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// URL is the server's client URL.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.Port) }

// TLSURL is the server's client URL with the tls scheme.
func (s *Server) TLSURL() string { return fmt.Sprintf("tls://127.0.0.1:%d", s.Port) }

// URLs joins the servers' client URLs with commas, as -nats-url takes them.
func URLs(servers []*Server) string {
	var u []string
	for _, s := range servers {
		u = append(u, s.URL())
	}
	return strings.Join(u, ",")
}

// Start starts the (stopped) server again on the same ports and store,
// and waits until it accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatalf("nats-server %s already running", s.Name)
	}
	logf, err := os.OpenFile(filepath.Join(s.Dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.bin, "-c", s.Conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.t.Fatal(err)
	}
	logf.Close()
	s.cmd, s.done = cmd, make(chan struct{})
	done := s.done
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			s.cmd = nil
			s.t.Fatalf("nats-server %s exited at start:\n%s", s.Name, s.Log())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("nats-server %s does not accept connections on %d:\n%s", s.Name, s.Port, s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the server with SIGTERM (a clean shutdown) and waits.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill ends the server with SIGKILL and waits. No-op if it is stopped.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Running reports whether the server process runs.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// PID is the server's process id, 0 when stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Log returns the server's log so far (its last 64 KiB).
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}
