#!/usr/bin/env bash
# journal-bench.sh measures `relaygate serve -journal` throughput (issue 13:
# at least 50,000 journal messages a second of mixed traffic). As root:
#
#   cmd/relaygate-load/journal-bench.sh
#
# In a private mount and pid namespace (nothing of the host's journal is
# touched) it starts systemd-journald on a tmpfs /run, without rate limits,
# and fills its journal with COUNT messages of relaygate-load's mixed
# stream (4% logins, 2% failed logins, the rest Postfix, Dovecot, sshd and
# systemd noise) through /run/systemd/journal/dev-log, as syslog(3) writes
# them. Then, RUNS times, it starts a relaygate with a new state and
# -journal alone, which reads that journal from one grace period ago, and
# times it from its start to the moment it has read the last entry
# (relaygate_journal_entries_total stops growing; polled every 20 ms). It
# prints each run and the median: mixed journal messages per second (the
# whole journal / the time) and entries per second (those journalctl's
# program-tag matches passed to relaygate).
#
# Environment: COUNT (default 500000), RUNS (default 3), METRICSPORT
# (default 19725, on 127.0.0.1), RELAYGATE (a binary to measure instead of
# this tree's).
set -euo pipefail
export LC_ALL=C

if [ "${1:-}" != inner ]; then
	cd "$(dirname "$0")/../.."
	[ "$(id -u)" = 0 ] || { echo "journal-bench.sh: run as root (it needs mount and pid namespaces)" >&2; exit 1; }
	[ -x /lib/systemd/systemd-journald ] || { echo "journal-bench.sh: needs /lib/systemd/systemd-journald (apt-get install systemd)" >&2; exit 1; }
	BIN=$(mktemp -d /tmp/relaygate-jbench.XXXXXX)
	trap 'rm -rf "$BIN"' EXIT
	if [ -n "${RELAYGATE:-}" ]; then cp "$RELAYGATE" "$BIN/relaygate"; else go build -o "$BIN/relaygate" ./cmd/relaygate; fi
	go build -o "$BIN/relaygate-load" ./cmd/relaygate-load
	unshare --mount --pid --fork --mount-proc --propagation private bash "$0" inner "$BIN"
	exit
fi

BIN=$2
COUNT=${COUNT:-500000}
RUNS=${RUNS:-3}
METRICSPORT=${METRICSPORT:-19725}
JDIR=/run/log/journal

mount -t tmpfs -o mode=755,size=4g tmpfs /run
mkdir -p /run/systemd/journal /run/systemd/journald.conf.d
cat >/run/systemd/journald.conf.d/bench.conf <<EOF
[Journal]
Storage=volatile
RateLimitIntervalSec=0
RateLimitBurst=0
RuntimeMaxUse=3G
RuntimeMaxFileSize=512M
ForwardToSyslog=no
ForwardToWall=no
EOF
/lib/systemd/systemd-journald >"$BIN/journald.out" 2>&1 &
JOURNALD=$!
for _ in $(seq 100); do [ -S /run/systemd/journal/dev-log ] && break; sleep 0.05; done

echo "filling the journal with $COUNT mixed messages through /run/systemd/journal/dev-log"
"$BIN/relaygate-load" -target unixgram:///run/systemd/journal/dev-log -count "$COUNT" -hosts 1
sleep 1
TOTAL=$(journalctl --directory=$JDIR --no-pager -o cat | wc -l)
echo "journal: $TOTAL entries in all"

metric() {
	curl -s "http://127.0.0.1:$METRICSPORT/metrics" 2>/dev/null | awk -v n="$1" '$1 == n { print $2 }'
}

results=()
for run in $(seq "$RUNS"); do
	W=$(mktemp -d "$BIN/run.XXXX")
	start=$(date +%s.%N)
	"$BIN/relaygate" serve -journal -journal-dir $JDIR -udp "" -tcp "" -mynetworks none \
		-map "$W/pbs.cdb" -metrics 127.0.0.1:$METRICSPORT -log-format json >"$W/log" 2>&1 &
	RG=$!
	last=-1
	lastchange=$start
	while :; do
		sleep 0.02
		v=$(metric relaygate_journal_entries_total)
		now=$(date +%s.%N)
		[ -n "$v" ] || continue
		if [ "$v" != "$last" ]; then
			last=$v
			lastchange=$now
		elif awk -v a="$now" -v b="$lastchange" 'BEGIN { exit !(a - b > 2) }'; then
			break
		fi
	done
	kill -TERM $RG
	wait $RG || true
	entries=$(printf '%.0f' "$last")
	secs=$(awk -v a="$lastchange" -v b="$start" 'BEGIN { printf "%.3f", a - b }')
	mixed=$(awk -v n="$TOTAL" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
	eps=$(awk -v n="$entries" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
	granted=$(grep -c '"message":"granted"' "$W/log" || true)
	echo "run $run: read $entries entries (of $TOTAL journal messages) in ${secs}s: $mixed mixed msg/s, $eps entries/s; $granted grants"
	results+=("$mixed $eps")
	rm -rf "$W"
done
printf '%s\n' "${results[@]}" | sort -n | awk '{ a[NR] = $1; b[NR] = $2 } END { m = int((NR + 1) / 2); printf "median: %s mixed journal msg/s (%s entries/s through the parsers)\n", a[m], b[m] }'
kill -TERM $JOURNALD
wait $JOURNALD 2>/dev/null || true
