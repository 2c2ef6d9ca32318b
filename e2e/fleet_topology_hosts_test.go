//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/relaygate/relaygate/internal/fleet/natstest"
	"github.com/relaygate/relaygate/internal/testutil"
)

// Issue 14's acceptance topology, every piece real software and every host
// in its own network, mount and UTS namespace, created by the test inside
// the suite's network namespace:
//
//	n1 n2 n3   nats-server, clustered, JetStream, the stream R3: the
//	           shipped example (examples/nats-server-relaygate.conf), TLS
//	           for clients and routes, users from client certificates
//	pop1 pop2  Dovecot → /dev/log → rsyslog → omrelp (the shipped example)
//	           → relaygate -relp 127.0.0.1:2514, publishing and following
//	mx1 mx2 mx3  relaygate following only (no listener) → its cdb map →
//	           Postfix smtpd (check_client_access cdb:…)
//
// The hosts are joined by veth pairs to a bridge in the suite's namespace
// (10.200.0.0/24; the bridge is 10.200.0.254). The POP3/IMAP and SMTP
// clients are the test itself, in the suite's namespace, each from its own
// address (192.168.72.0/21, on the bridge), so Dovecot logs that address
// as rip and Postfix sees it as the client. Every login of the test is
// from a fresh address, so that an address in a map proves that login
// got there. Each host has a mount namespace of its own only for a
// private /dev: Dovecot logs with syslog(3), which always writes to
// /dev/log, and each POP host's Dovecot must reach its own rsyslog.

const (
	topoBridge   = "rgfleet0"
	topoGateway  = "10.200.0.254"
	topoPOP3     = 110
	topoIMAP     = 143
	topoSMTP     = 25
	topoLoadUDP  = "127.0.0.1:5514" // pop1's relaygate, for the background load
	topoRelaySrc = 1600             // the clients: topoClient(1) … topoClient(1600)
	natsExample  = "../examples/nats-server-relaygate.conf"
)

// topoClients holds the clients' addresses: enough for every login of
// the test (about 900) to come from an address of its own.
var topoClients = netip.MustParsePrefix("192.168.72.0/21")

// topoClient is the i-th client address (1 ≤ i ≤ topoRelaySrc+2; the last
// two are the failed login's and the address that never logs in).
func topoClient(i int) string {
	b := topoClients.Addr().As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) + uint32(i)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}).String()
}

// topoHolder is run with unshare (new net, mount and UTS namespaces) and
// keeps them alive: it names the host, brings lo up, gives the host a
// private /dev (a tmpfs with the few device nodes of the suite's, as
// setupNamespace does) and sleeps. Everything else is started in its
// namespaces with nsenter.
const topoHolder = `set -e
d=$1
hostname "$2"
mount -t tmpfs -o mode=755,size=1m,nosuid tmpfs "$d"
for n in null zero full random urandom tty; do : >"$d/$n"; mount --bind "/dev/$n" "$d/$n"; done
mkdir "$d/pts" "$d/shm"
mount --bind /dev/pts "$d/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$d/shm"
ln -s /proc/self/fd "$d/fd"; ln -s /proc/self/fd/0 "$d/stdin"; ln -s /proc/self/fd/1 "$d/stdout"
ln -s /proc/self/fd/2 "$d/stderr"; ln -s pts/ptmx "$d/ptmx"
mount --move "$d" /dev
ip link set lo up
echo ready
exec sleep infinity
`

// topoHost is one host: its namespaces, held by holder, and its address
// on the bridge.
type topoHost struct {
	t      *testing.T
	name   string
	addr   string
	dir    string
	holder *proc
}

// nsenter is the command prefix that runs a program on the host.
func (h *topoHost) nsenter() []string {
	pid := h.holder.pid()
	return []string{"nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", pid), fmt.Sprintf("--mount=/proc/%d/ns/mnt", pid),
		fmt.Sprintf("--uts=/proc/%d/ns/uts", pid), "--"}
}

func (h *topoHost) command(name string, args ...string) *exec.Cmd {
	argv := append(h.nsenter(), name)
	argv = append(argv, args...)
	return exec.Command(argv[0], argv[1:]...)
}

// run runs a command on the host and fails the test if it fails.
func (h *topoHost) run(name string, args ...string) string {
	h.t.Helper()
	return run(h.t, h.nsenter()[0], append(append(h.nsenter()[1:], name), args...)...)
}

// devPath is a path in the host's private /dev, as seen from here.
func (h *topoHost) devPath(name string) string {
	return fmt.Sprintf("/proc/%d/root/dev/%s", h.holder.pid(), name)
}

type topoMTA struct {
	*topoHost
	rg   *fleetNode
	smtp string // Postfix smtpd's address
}

type topoPOP struct {
	*topoHost
	rg     *fleetNode
	allLog string // everything the host's rsyslog received
}

// topoNATS is a nats-server host: its configuration, and the server
// while it runs.
type topoNATS struct {
	*topoHost
	conf string
	p    *proc
}

type topology struct {
	t        *testing.T
	dir      string
	natsBin  string
	pki      *topoPKI
	nats     []*topoNATS
	pops     []*topoPOP
	mtas     []*topoMTA
	urls     string
	natsOpts []nats.Option // the test's own connections: TLS, as pop1 (a user of GRANTS)
	nextC    int           // the next client address
}

// newTopology builds the bridge, the eight hosts and their daemons.
func newTopology(t *testing.T) *topology {
	t.Helper()
	natsBin := natstest.Program(t)
	needOmrelp(t)
	needHostDaemons(t)
	needFile(t, "/usr/bin/nsenter", "apt-get install util-linux")
	tp := &topology{t: t, dir: testDir(t), natsBin: natsBin}
	// Runs after every daemon stopped, before the directory goes.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		logs, _ := filepath.Glob(filepath.Join(tp.dir, "*.log"))
		more, _ := filepath.Glob(filepath.Join(tp.dir, "*", "rsyslog", "all.log"))
		for _, l := range append(logs, more...) {
			t.Logf("---- last lines of %s ----\n%s", l, tail(l, 30))
		}
	})

	// The bridge and the clients' addresses (the hosts route the clients'
	// network to the bridge).
	run(t, "ip", "link", "add", topoBridge, "type", "bridge")
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "link", "del", topoBridge).CombinedOutput(); err != nil {
			t.Errorf("ip link del %s: %v: %s", topoBridge, err, out)
		}
	})
	batch := []string{fmt.Sprintf("addr add %s/24 dev %s", topoGateway, topoBridge)}
	for i := 1; i <= topoRelaySrc+2; i++ {
		batch = append(batch, fmt.Sprintf("addr add %s/32 dev %s", topoClient(i), topoBridge))
	}
	batch = append(batch, "link set "+topoBridge+" up")
	cmd := exec.Command("ip", "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(batch, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v: %s", err, out)
	}

	var urls []string
	for i := range 3 {
		h := tp.host(fmt.Sprintf("n%d", i+1), fmt.Sprintf("10.200.0.%d", i+1))
		tp.nats = append(tp.nats, &topoNATS{topoHost: h})
		urls = append(urls, fmt.Sprintf("tls://%s:4222", h.addr))
	}
	tp.urls = strings.Join(urls, ",")
	for i := range 2 {
		tp.pops = append(tp.pops, &topoPOP{topoHost: tp.host(fmt.Sprintf("pop%d", i+1), fmt.Sprintf("10.200.0.%d", 11+i))})
	}
	for i := range 3 {
		tp.mtas = append(tp.mtas, &topoMTA{topoHost: tp.host(fmt.Sprintf("mx%d", i+1), fmt.Sprintf("10.200.0.%d", 21+i))})
	}
	tp.pki = newTopoPKI(t, filepath.Join(tp.dir, "tls"))
	cert, key := tp.pki.client(t, "pop1")
	tp.natsOpts = []nats.Option{nats.RootCAs(tp.pki.ca), nats.ClientCert(cert, key)}

	start := time.Now()
	for _, h := range tp.nats {
		tp.writeNATSConf(h)
		tp.startNATS(h)
	}
	for _, h := range tp.nats {
		tp.waitNATS(h)
	}
	waitStreamR3(t, tp.urls, tp.natsOpts...)
	t.Logf("nats-server ×3 up (the example's configuration: TLS, accounts), stream R3 in %s", time.Since(start).Round(time.Millisecond))
	for _, m := range tp.mtas {
		tp.startMTA(m)
	}
	for i, p := range tp.pops {
		tp.startPOP(p, i == 0)
	}
	t.Logf("topology up in %s", time.Since(start).Round(time.Millisecond))
	return tp
}

// host makes a host's namespaces and its veth pair to the bridge.
func (tp *topology) host(name, addr string) *topoHost {
	t := tp.t
	t.Helper()
	h := &topoHost{t: t, name: name, addr: addr, dir: filepath.Join(tp.dir, name)}
	mkdirs(t, 0o755, h.dir, filepath.Join(h.dir, "dev"))
	log := filepath.Join(h.dir, "holder.log")
	h.holder = startProc(t, name+" namespaces", log, exec.Command("unshare", "--net", "--mount", "--uts", "--propagation", "private",
		"sh", "-c", topoHolder, "sh", filepath.Join(h.dir, "dev"), name))
	waitLog(t, log, "ready", 10*time.Second)
	veth := "rgf-" + name
	run(t, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", fmt.Sprint(h.holder.pid()))
	run(t, "ip", "link", "set", veth, "master", topoBridge, "up")
	h.run("ip", "addr", "add", addr+"/24", "dev", "eth0")
	h.run("ip", "link", "set", "eth0", "up")
	// The clients' network only, no default route: a lookup of a host
	// name (Dovecot's own at start) must fail at once rather than wait
	// for a DNS server beyond the bridge, which nothing forwards to.
	h.run("ip", "route", "add", topoClients.String(), "via", topoGateway)
	return h
}

// writeNATSConf writes the host's nats-server configuration: the shipped
// example, whole, with only what names a deployment replaced (the server's
// name, certificate files, store and the routes' host names, which no DNS
// resolves here), so that its TLS for clients and routes and its
// authorization block (users from client certificates, the two accounts)
// are what the fleet runs on. natstest cannot run it: its servers listen
// on the suite's 127.0.0.1. The example listens on 0.0.0.0, which here is
// the host's own addresses.
func (tp *topology) writeNATSConf(h *topoNATS) {
	t := tp.t
	t.Helper()
	b, err := os.ReadFile(natsExample)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	if !strings.Contains(conf, "# BEGIN relaygate authorization\n") || !strings.Contains(conf, "# END relaygate authorization") {
		t.Fatalf("%s: no marked authorization block", natsExample)
	}
	cert, key := tp.pki.server(t, h.name, h.addr)
	edits := [][2]string{
		{"server_name: n1\n", "server_name: " + h.name + "\n"},
		{`"/etc/nats/tls/n1.pem"`, strconv.Quote(cert)},
		{`"/etc/nats/tls/n1.key"`, strconv.Quote(key)},
		{`"/etc/nats/tls/ca.pem"`, strconv.Quote(tp.pki.ca)},
		{`store_dir: "/var/lib/nats"`, "store_dir: " + strconv.Quote(filepath.Join(h.dir, "js"))},
		// The example's users are mx1 … mx3; the MTA that joins later
		// (new-mta-joins) is added as the operator would, beside them.
		{`{ user: "mx3.example.org", permissions: $FOLLOW }`, `{ user: "mx3.example.org", permissions: $FOLLOW }
      { user: "mx4.example.org", permissions: $FOLLOW }`},
	}
	for _, n := range tp.nats {
		edits = append(edits, [2]string{fmt.Sprintf("nats-route://%s.example.org:6222", n.name), fmt.Sprintf("nats-route://%s:6222", n.addr)})
	}
	for _, e := range edits {
		if !strings.Contains(conf, e[0]) {
			t.Fatalf("%s: no %q to replace", natsExample, e[0])
		}
		conf = strings.ReplaceAll(conf, e[0], e[1])
	}
	h.conf = filepath.Join(h.dir, "nats.conf")
	testutil.WriteFile(t, h.conf, conf, 0o600)
	if out, err := exec.Command(tp.natsBin, "-t", "-c", h.conf).CombinedOutput(); err != nil {
		t.Fatalf("nats-server -t -c %s: %v\n%s", h.conf, err, out)
	}
}

// startNATS starts the host's nats-server (again, after a kill: same
// configuration and store); waitNATS waits until it accepts connections.
// Apart, so that the whole cluster can be started at once.
func (tp *topology) startNATS(h *topoNATS) {
	tp.t.Helper()
	h.p = startProc(tp.t, h.name+" nats-server", filepath.Join(h.dir, "nats-server.log"), h.command(tp.natsBin, "-c", h.conf))
}

func (tp *topology) waitNATS(h *topoNATS) {
	t := tp.t
	t.Helper()
	if _, ok := testutil.Poll(60*time.Second, 20*time.Millisecond, func() bool { // a restart recovers the JetStream store first
		return !h.p.exited() && portOpen(h.addr+":4222")
	}); !ok {
		t.Fatalf("nats-server on %s not accepting connections:\n%s", h.name, tail(h.p.log, 20))
	}
}

// node is the host's relaygate in the fleet (not started), connecting
// with TLS and the host's client certificate, whose name is its user.
func (tp *topology) node(h *topoHost, mode string, listen ...string) *fleetNode {
	n := newFleetNode(tp.t, tp.dir, tp.urls, h.name, mode, listen...)
	cert, key := tp.pki.client(tp.t, h.name)
	n.args = append(n.args, "-nats-ca", tp.pki.ca, "-nats-cert", cert, "-nats-key", key)
	n.prefix = h.nsenter()
	return n
}

// startMTA runs the MTA's relaygate, following only, and Postfix on its
// map: the suite's Postfix configuration, listening on the host's address.
func (tp *topology) startMTA(m *topoMTA) {
	tp.t.Helper()
	m.rg = tp.node(m.topoHost, "follow", "-udp", "", "-tcp", "")
	m.rg.start()
	tp.startPostfix(m)
}

// startPostfix runs Postfix on the MTA's map.
func (tp *topology) startPostfix(m *topoMTA) {
	t := tp.t
	t.Helper()
	st := &stack{t: t, dir: m.dir, mapBase: strings.TrimSuffix(m.rg.mapPath, ".cdb")}
	st.writePostfixConfig()
	m.smtp = fmt.Sprintf("%s:%d", m.addr, topoSMTP)
	edit := func(file, from, to string) {
		p := filepath.Join(st.postfixDir, file)
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), from) {
			t.Fatalf("%s: no %q to replace (%v)", p, from, err)
		}
		testutil.WriteFile(t, p, strings.Replace(string(b), from, to, 1), 0o644)
	}
	edit("main.cf", "inet_interfaces = 127.0.0.1", "inet_interfaces = "+m.addr)
	edit("main.cf", "myhostname = mail.pbs.test", "myhostname = "+m.name+".pbs.test")
	edit("master.cf", smtpAddr+" inet", m.smtp+" inet")

	spool := filepath.Join(m.dir, "postfix", "spool")
	mkdirs(t, 0o755, spool)
	m.run("postfix", "-c", st.postfixDir, "check")
	m.run("postfix", "-c", st.postfixDir, "start")
	t.Cleanup(func() {
		killPIDFile(t, m.name+" postfix master", filepath.Join(spool, "pid", "master.pid"), 15*time.Second)
	})
	waitGreeting(t, m.name+" postfix smtpd", m.smtp, "220 ", 20*time.Second)
}

// startPOP runs the POP host's relaygate (RELP; with load, also UDP on
// loopback for the background stream), its rsyslog forwarding the mail
// facility with the shipped omrelp example, and Dovecot.
func (tp *topology) startPOP(p *topoPOP, load bool) {
	t := tp.t
	t.Helper()
	udp := ""
	if load {
		udp = topoLoadUDP
	}
	p.rg = tp.node(p.topoHost, "both", "-udp", udp, "-tcp", "", "-relp", relpAddr)
	p.rg.start()

	dir := filepath.Join(p.dir, "rsyslog")
	mkdirs(t, 0o755, filepath.Join(dir, "work"))
	p.allLog = filepath.Join(dir, "all.log")
	conf := filepath.Join(dir, "rsyslog.conf")
	testutil.WriteFile(t, conf, fmt.Sprintf(`global(workDirectory="%s")
module(load="imuxsock" SysSock.Name="/dev/log" SysSock.RateLimit.Interval="0")
%s
*.* action(type="omfile" file="%s")
`, filepath.Join(dir, "work"), relpForward(t), p.allLog), 0o644)
	p.run("rsyslogd", "-N1", "-f", conf)
	startProc(t, p.name+" rsyslogd", filepath.Join(dir, "rsyslogd.out"),
		p.command("rsyslogd", "-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid")))
	token := fmt.Sprintf("e2e-probe-%s-%d", p.name, time.Now().UnixNano())
	if _, ok := testutil.Poll(startupWait, 100*time.Millisecond, func() bool {
		if c, err := net.Dial("unixgram", p.devPath("log")); err == nil {
			fmt.Fprintf(c, "<22>e2e-probe: %s", token)
			c.Close()
		}
		return testutil.FileContains(p.allLog, token)
	}); !ok {
		t.Fatalf("%s: rsyslog did not log a probe within %v", p.name, startupWait)
	}

	dd := filepath.Join(p.dir, "dovecot")
	users := dovecotHome(t, dd)
	dconf := filepath.Join(dd, "dovecot.conf")
	// As startDovecot's, listening on every address of the host.
	testutil.WriteFile(t, dconf, dovecotConf(dd, users, "*", "pop3 imap", ""), 0o644)
	startProc(t, p.name+" dovecot", filepath.Join(dd, "dovecot.out"), p.command("dovecot", "-F", "-c", dconf))
	waitGreeting(t, p.name+" dovecot pop3", fmt.Sprintf("%s:%d", p.addr, topoPOP3), "+OK", 15*time.Second)
	waitGreeting(t, p.name+" dovecot imap", fmt.Sprintf("%s:%d", p.addr, topoIMAP), "* OK", 15*time.Second)
}
