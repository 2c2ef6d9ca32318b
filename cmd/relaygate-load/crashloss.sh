#!/usr/bin/env bash
# crashloss.sh measures how many received logins a kill -9 of relaygate
# loses (docs/HARDENING.md, "Crash window"). Real rsyslog reads Dovecot login
# lines from a private unix socket and forwards them over TCP (omfwd with a
# LinkedList action queue, retrying forever) to relaygate on 127.0.0.1. A
# sender writes LOGINS distinct logins over SECONDS; relaygate is killed
# with SIGKILL KILLS times during the stream and restarted at once with the
# same -map and -state. When rsyslog has delivered everything, relaygate is
# stopped cleanly and the addresses in its map are counted.
#
#   cmd/relaygate-load/crashloss.sh
#
# Environment: RELAYGATE (a relaygate binary; default: built from this
# tree), RUNS (3), LOGINS (6000), SECONDS_ (3), KILLS (2), PORT (5614),
# TRANSPORT (tcp; udp: rsyslog's omfwd over UDP to relaygate's -udp; relp:
# omrelp with a disk-assisted queue to relaygate's -relp, docs/RELP.md).
# Per run it prints the logins relaygate logged as granted (received) and
# those in the final map (kept): received − kept were lost by relaygate's
# crashes, LOGINS − received by the transport (plain TCP has no
# acknowledgements, so what sat in socket buffers at a kill is gone; RELP
# is the cure for that part: relaygate answers a message once its login is
# durable, and rsyslog sends again what was not answered). It needs
# rsyslogd (and rsyslog-relp for relp) and python3, runs nothing as a
# system service, and stops every process it started by its PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
export LC_ALL=C

RUNS=${RUNS:-3}
LOGINS=${LOGINS:-6000}
SECS=${SECONDS_:-3}
KILLS=${KILLS:-2}
PORT=${PORT:-5614}
TRANSPORT=${TRANSPORT:-tcp}
MODULE=
case $TRANSPORT in
tcp) LISTEN=(-udp '' -tcp 127.0.0.1:$PORT) FWD='type="omfwd" protocol="tcp" TCP_Framing="octet-counted"' ;;
udp) LISTEN=(-udp 127.0.0.1:$PORT -tcp '') FWD='type="omfwd" protocol="udp"' ;;
relp)
	LISTEN=(-udp '' -tcp '' -relp 127.0.0.1:$PORT)
	MODULE='module(load="omrelp")'
	# examples/rsyslog-relaygate-relp.conf's action.
	FWD='type="omrelp" windowSize="1024" queue.filename="relaygate-relp" queue.saveOnShutdown="on" queue.maxDiskSpace="256m"'
	;;
*) echo "TRANSPORT must be tcp, udp or relp" >&2; exit 2 ;;
esac
RSYSLOGD=${RSYSLOGD:-/usr/sbin/rsyslogd}
TOP=$(mktemp -d /tmp/relaygate-crashloss.XXXXXX)
RG= RS= SENDER=
cleanup() {
	for p in $SENDER $RG $RS; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $SENDER $RG $RS; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TOP"
}
trap cleanup EXIT

BIN=${RELAYGATE:-}
if [ -z "$BIN" ]; then
	go build -o "$TOP/relaygate" ./cmd/relaygate
	BIN=$TOP/relaygate
fi

start_relaygate() {
	"$BIN" "${LISTEN[@]}" -mynetworks none -grace 1h \
		-map "$WORK/pbs.cdb" -state "$WORK/pbs.state" -log-format json 2>>"$WORK/rg.$1.log" &
	RG=$!
	for _ in $(seq 400); do
		grep -q '"message":"relaygate listening"' "$WORK/rg.$1.log" 2>/dev/null && return
		kill -0 "$RG" 2>/dev/null || break
		sleep 0.01
	done
	echo "relaygate did not start:" >&2
	cat "$WORK/rg.$1.log" >&2
	exit 1
}

received() {
	{ cat "$WORK"/rg.*.log | grep '"message":"granted"' | grep -o '"addr":"10\.77\.[0-9.]*"' || true; } | sort -u | wc -l
}

one_run() {
	WORK=$(mktemp -d "$TOP/run.XXXX")
	mkdir "$WORK/rsyslog"
	cat >"$WORK/rsyslog.conf" <<EOF
global(workDirectory="$WORK/rsyslog")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="$WORK/log.sock" RateLimit.Interval="0")
$MODULE
if \$programname == "dovecot" then {
	action($FWD target="127.0.0.1" port="$PORT"
		template="RSYSLOG_SyslogProtocol23Format"
		queue.type="LinkedList" queue.size="1000000"
		action.resumeRetryCount="-1" action.resumeInterval="1")
}
EOF
	local gen=0
	start_relaygate $gen
	"$RSYSLOGD" -n -f "$WORK/rsyslog.conf" -i "$WORK/rsyslogd.pid" 2>"$WORK/rsyslog.err" &
	RS=$!
	for _ in $(seq 200); do [ -S "$WORK/log.sock" ] && break; sleep 0.01; done
	python3 - "$WORK/log.sock" "$LOGINS" "$SECS" <<'EOF' &
import socket, sys, time
path, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(path)
start = time.monotonic()
for i in range(n):
    d = start + i * secs / n - time.monotonic()
    if d > 0:
        time.sleep(d)
    a = "10.77.%d.%d" % (i // 250, i % 250 + 1)
    stamp = time.strftime("%b %e %H:%M:%S")
    s.send(("<22>%s dovecot[812]: imap-login: Login: user=<u%d@example.org>, method=PLAIN, "
            "rip=%s, lip=192.0.2.1, mpid=%d, secured, session=<s%011d>" % (stamp, i, a, 1000 + i, i)).encode())
EOF
	SENDER=$!
	for k in $(seq "$KILLS"); do
		sleep "$(python3 -c "print($SECS / ($KILLS + 1))")"
		kill -KILL "$RG"
		wait "$RG" 2>/dev/null || true
		gen=$((gen + 1))
		start_relaygate $gen
	done
	wait "$SENDER"
	SENDER=
	# rsyslog retries a broken connection after a second: wait until
	# nothing new has arrived for 3 s.
	local last=-1 same=0 now
	while [ $same -lt 6 ]; do
		sleep 0.5
		now=$(received)
		if [ "$now" = "$last" ]; then same=$((same + 1)); else same=0 last=$now; fi
	done
	kill -TERM "$RG"
	wait "$RG" || true
	RG=
	kill -TERM "$RS"
	wait "$RS" || true
	RS=
	local kept rec
	kept=$("$BIN" list -map "$WORK/pbs.cdb" -state "$WORK/pbs.state" | grep -c '10\.77\.' || true)
	rec=$(received)
	echo "run: logins $LOGINS kills $KILLS received $rec kept $kept lost_by_relaygate $((rec - kept)) lost_in_transport $((LOGINS - rec)) lost_per_kill $(((LOGINS - kept) / KILLS))"
	echo "$(((LOGINS - kept) / KILLS)) $(((rec - kept) / KILLS))" >>"$TOP/results"
}

for _ in $(seq "$RUNS"); do one_run; done
sort -n "$TOP/results" | awk '{a[NR]=$1; b[NR]=$2} END {m=int((NR+1)/2); print "median lost per kill (all): " a[m]}'
sort -n -k2 "$TOP/results" | awk '{b[NR]=$2} END {m=int((NR+1)/2); print "median lost per kill by relaygate (received, not kept): " b[m]}'
