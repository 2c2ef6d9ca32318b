#!/usr/bin/env bash
# bench.sh reproduces the figures of docs/BENCHMARKS.md ("Throughput,
# latency and memory"): it builds relaygate and relaygate-load, then runs
# each named benchmark RUNS times and prints every run and the median.
#
#   cmd/relaygate-load/bench.sh [udp-paced] [udp-ratio] [tcp] [parse] [publish] [latency] [memory] [steady]
#
# No name runs them all (about 25 minutes, 10 of them the steady run).
# Environment: RUNS (default 3), STEADY_SECONDS (default 600), PORT (5514),
# REFPORT (5599) and METRICSPORT (9725) on 127.0.0.1; RELAYGATE, a relaygate
# binary to measure instead of this tree's; MEMORY_MIX, the memory mixes to
# run (default "bench issue16 long"). It needs nothing else on those ports,
# and postmap for the publish comparison. It runs relaygate as the user
# who runs it; as root the UDP buffer is forced to -udp-rcvbuf (8 MiB).
set -euo pipefail
cd "$(dirname "$0")/../.."
export LC_ALL=C

RUNS=${RUNS:-3}
STEADY_SECONDS=${STEADY_SECONDS:-600}
PORT=${PORT:-5514}
REFPORT=${REFPORT:-5599}
METRICSPORT=${METRICSPORT:-9725}
BIN=$(mktemp -d /tmp/relaygate-bench.XXXXXX)
RG=
trap 'stop_relaygate; rm -rf "$BIN"' EXIT

if [ -n "${RELAYGATE:-}" ]; then
	cp "$RELAYGATE" "$BIN/relaygate" # a relaygate built elsewhere, to compare
else
	go build -o "$BIN/relaygate" ./cmd/relaygate
fi
go build -o "$BIN/relaygate-load" ./cmd/relaygate-load
load() { "$BIN/relaygate-load" "$@"; }

# start_relaygate FLAGS... runs relaygate on loopback, logging JSON to
# $WORK/log, and waits until it listens.
start_relaygate() {
	WORK=$(mktemp -d "$BIN/run.XXXX")
	"$BIN/relaygate" -udp 127.0.0.1:$PORT -tcp 127.0.0.1:$PORT -mynetworks none \
		-map "$WORK/pbs.cdb" -log-format json "$@" 2>"$WORK/log" &
	RG=$!
	for _ in $(seq 200); do
		grep -q '"message":"relaygate listening"' "$WORK/log" && return
		sleep 0.05
	done
	echo "relaygate did not start:" >&2
	cat "$WORK/log" >&2
	exit 1
}

# stop_relaygate ends it with SIGTERM: it drains what it received, writes the
# map once more and logs its counters.
stop_relaygate() {
	if [ -n "$RG" ]; then
		kill -TERM "$RG"
		wait "$RG" || true
		RG=
	fi
}

# counter NAME is a counter of relaygate's last "stopped" line (the metric
# name without relaygate_ and _total, label values appended).
counter() { grep '"message":"stopped"' "$WORK/log" | grep -o "\"$1\":[0-9]*" | cut -d: -f2; }

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }

# field PATTERN FILE prints the first number after PATTERN in FILE.
field() { grep -o "$1 *[0-9.]*" "$2" | head -1 | grep -o '[0-9.]*$'; }

header() { printf '\n=== %s\n' "$*"; }

udp_paced() {
	header "UDP, 1,000,000 messages at 100,000 msg/s: every login granted?"
	for r in $(seq "$RUNS"); do
		start_relaygate -grace 10h -max-entries 2000000
		load -target udp://127.0.0.1:$PORT -count 1000000 -rate 100000 \
			-map "$WORK/pbs.cdb" -verify -addrs-out "$WORK/addrs" | tee "$WORK/out" || true
		stop_relaygate
		# The same check through `relaygate list`, as an operator would.
		"$BIN/relaygate" list -map "$WORK/pbs.cdb" 2>/dev/null | awk 'NR > 1 {print $1}' | sort >"$WORK/listed"
		missing=$(sort "$WORK/addrs" | comm -23 - "$WORK/listed" | wc -l)
		echo "run $r: relaygate received $(counter messages_received_udp) datagrams; logins missing from relaygate list: $missing of $(wc -l <"$WORK/addrs")"
		echo "$missing" >>"$BIN/udp-paced"
	done
	echo "RESULT udp-paced: logins lost per run (median of $RUNS): $(median <"$BIN/udp-paced")"
}

udp_ratio() {
	header "UDP flat out, 1,000,000 messages: relaygate against the reference receiver, alternating"
	for r in $(seq "$RUNS"); do
		load -reference 127.0.0.1:$REFPORT -target udp://127.0.0.1:$REFPORT -count 1000000 | tee "$BIN/ref.out"
		ref=$(field 'counted' "$BIN/ref.out")
		start_relaygate -grace 10h -max-entries 2000000
		load -target udp://127.0.0.1:$PORT -count 1000000 | tee "$WORK/out"
		sleep 1
		stop_relaygate
		got=$(counter messages_received_udp)
		echo "run $r: reference counted $ref, relaygate received $got: $(awk -v a="$got" -v b="$ref" 'BEGIN {printf "%.4f", a / b}')"
		echo "$ref" >>"$BIN/udp-ref"
		echo "$got" >>"$BIN/udp-rg"
		awk -v a="$got" -v b="$ref" 'BEGIN {print a / b}' >>"$BIN/udp-ratio"
	done
	echo "RESULT udp-ratio: reference median $(median <"$BIN/udp-ref"), relaygate median $(median <"$BIN/udp-rg"), ratio median $(median <"$BIN/udp-ratio")"
}

tcp() {
	header "TCP, one connection, newline framing"
	for r in $(seq "$RUNS"); do
		start_relaygate -grace 10h -max-entries 2000000
		load -target tcp://127.0.0.1:$PORT -count 3000000 -map "$WORK/pbs.cdb" -verify | tee "$WORK/out" || true
		stop_relaygate
		echo "run $r (flat out): relaygate received $(counter messages_received_tcp) of 3000000"
		grep -o '[0-9]* msg/s' "$WORK/out" | cut -d' ' -f1 >>"$BIN/tcp-flat"
		[ "$(counter messages_received_tcp)" = 3000000 ] || echo "LOST: $((3000000 - $(counter messages_received_tcp)))"

		start_relaygate -grace 10h -max-entries 2000000
		load -target tcp://127.0.0.1:$PORT -count 3000000 -rate 150000 -map "$WORK/pbs.cdb" -verify | tee "$WORK/out" || true
		stop_relaygate
		echo "run $r (150,000 msg/s for 20 s): relaygate received $(counter messages_received_tcp) of 3000000"
		[ "$(counter messages_received_tcp)" = 3000000 ] || echo "LOST: $((3000000 - $(counter messages_received_tcp)))"
	done
	echo "RESULT tcp: flat out median $(median <"$BIN/tcp-flat") msg/s (sender's rate; relaygate's count checked above)"
	# The same path in process: receiver → parsers → grant table.
	go test ./cmd/relaygate -run '^$' -bench BenchmarkReceiveParse -count "$RUNS" | tee "$BIN/recvparse.out"
	echo "RESULT tcp: BenchmarkReceiveParse median $(awk '/^BenchmarkReceiveParse/ {print $(NF - 1)}' "$BIN/recvparse.out" | median) msgs/s"
}

parse() {
	header "relaygate parse over a 1,000,000-line mail log, every built-in daemon"
	load -target file://"$BIN/mail.log" -count 1000000
	for r in $(seq "$RUNS"); do
		start=$(date +%s.%N)
		"$BIN/relaygate" parse "$BIN/mail.log" >/dev/null 2>"$BIN/parse.err"
		end=$(date +%s.%N)
		rate=$(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.0f", 1000000 / (e - s)}')
		echo "run $r: $(cat "$BIN/parse.err"); $rate lines/s"
		echo "$rate" >>"$BIN/parse"
	done
	go test ./cmd/relaygate -run '^$' -bench BenchmarkParseCommand -count "$RUNS"
	echo "RESULT parse: median $(median <"$BIN/parse") lines/s"
}

publish() {
	header "Map publish and state save against postmap cdb:, same keys, same run"
	go test ./cdbwriter -run '^$' -bench 'Publish|SaveState|StateAppend|Postmap' -count "$RUNS" | tee "$BIN/publish.out"
	for b in Publish StateAppend SaveState Postmap; do
		for n in 10000 100000 1000000; do
			m=$(grep "^Benchmark$b/entries=$n-" "$BIN/publish.out" | awk '{print $3}' | median)
			echo "RESULT publish: $b entries=$n median $(awk -v m="$m" 'BEGIN {printf "%.1f", m / 1e6}') ms"
		done
	done
}

latency() {
	header "Login → map latency, -flush 1s (the default)"
	for r in $(seq "$RUNS"); do
		start_relaygate
		sleep 1.5 # past the -flush of the publish at startup
		load -target udp://127.0.0.1:$PORT -count 0 -map "$WORK/pbs.cdb" -probes 40 -probe-every 1300ms | tee "$BIN/isolated"
		load -target udp://127.0.0.1:$PORT -count 0 -map "$WORK/pbs.cdb" -probes 150 -probe-every 100ms | tee "$BIN/b2b"
		stop_relaygate
		start_relaygate
		load -target udp://127.0.0.1:$PORT -count 6000000 -rate 100000 -map "$WORK/pbs.cdb" -probes 600 -probe-every 97ms | tee "$BIN/load"
		stop_relaygate
		echo "run $r: relaygate received $(counter messages_received_udp) of 6000600, grants at the end $(counter grants), evicted $(counter grants_evicted)"
		for f in isolated b2b load; do
			grep -o 'p99 [0-9.]*[mµ]*s' "$BIN/$f" | awk '{v = $2; if (v ~ /ms$/) v = v + 0; else if (v ~ /µs$/) v = v / 1000; else v = v * 1000; print v}' >>"$BIN/lat-$f"
		done
	done
	echo "RESULT latency p99, idle, isolated logins (ms): $(paste -sd' ' "$BIN/lat-isolated"), median $(median <"$BIN/lat-isolated")"
	echo "RESULT latency p99, idle, one login every 100 ms (ms): $(paste -sd' ' "$BIN/lat-b2b"), median $(median <"$BIN/lat-b2b")"
	echo "RESULT latency p99, under 100,000 msg/s (ms): $(paste -sd' ' "$BIN/lat-load"), median $(median <"$BIN/lat-load")"
}

# The logins of the memory benchmark: "name|relaygate-load flags". bench is
# the stream of the other benchmarks (names u1 … u1000000, 20% IPv6);
# issue16 the mix of issue 11 point 16; long the worst realistic one: names
# of 63-64 bytes, every address IPv6, logins from 50 hosts.
MEMORY_MIXES=(
	"bench|"
	"issue16|-user user%d@example.org -ipv6 50"
	"long|-user firstname.middlename.%d@mail.faculty.example-university.edu -ipv6 100 -hosts 50"
)

memory() {
	header "Resident memory with 1,000,000 active grants"
	for mix in "${MEMORY_MIXES[@]}"; do
		name=${mix%%|*}
		[[ " ${MEMORY_MIX:-bench issue16 long} " == *" $name "* ]] || continue
		for r in $(seq "$RUNS"); do
			start_relaygate -grace 10h -max-entries 2000000 -metrics 127.0.0.1:$METRICSPORT
			# shellcheck disable=SC2086 # the mix's flags are words
			load -target tcp://127.0.0.1:$PORT -logins 100 -failed 0 -count 1000000 ${mix#*|} \
				-map "$WORK/pbs.cdb" -verify -wait 120s | tee "$WORK/out" || true
			sleep 10
			rss=$(awk '/VmRSS/ {print $2}' /proc/$RG/status)
			hwm=$(awk '/VmHWM/ {print $2}' /proc/$RG/status)
			heap=$(curl -s http://127.0.0.1:$METRICSPORT/metrics | awk '/^go_memstats_heap_inuse_bytes / {printf "%.0f", $2 / 1048576}')
			stop_relaygate
			echo "$name run $r: $(counter grants) grants; VmRSS $((rss / 1024)) MiB, peak (VmHWM) $((hwm / 1024)) MiB, Go heap in use $heap MiB"
			echo $((rss / 1024)) >>"$BIN/rss-$name"
			echo $((hwm / 1024)) >>"$BIN/hwm-$name"
			echo "$heap" >>"$BIN/heap-$name"
		done
		echo "RESULT memory $name: with 1,000,000 grants, median VmRSS $(median <"$BIN/rss-$name") MiB, VmHWM $(median <"$BIN/hwm-$name") MiB, Go heap in use $(median <"$BIN/heap-$name") MiB"
	done
}

steady() {
	header "Resident memory under 100,000 msg/s for $STEADY_SECONDS s (defaults: -grace 30m, -max-entries 100000)"
	start_relaygate
	load -target udp://127.0.0.1:$PORT -rate 100000 -count $((STEADY_SECONDS * 100000)) \
		-rss-pid "$RG" -rss-every 5s -rss-out "$BIN/steady.csv" | tee "$BIN/steady.out"
	stop_relaygate
	echo "relaygate: received $(counter messages_received_udp), grants $(counter grants), evicted $(counter grants_evicted)"
	echo "RESULT steady: $(grep '^rss' "$BIN/steady.out")"
	echo "samples (seconds,KiB):"
	awk 'NR == 1 || NR % 12 == 2' "$BIN/steady.csv" | paste -sd' '
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(udp-paced udp-ratio tcp parse publish latency memory steady)
for t in "${targets[@]}"; do
	case $t in
	udp-paced) udp_paced ;;
	udp-ratio) udp_ratio ;;
	tcp) tcp ;;
	parse) parse ;;
	publish) publish ;;
	latency) latency ;;
	memory) memory ;;
	steady) steady ;;
	*) echo "unknown benchmark $t" >&2 && exit 2 ;;
	esac
done
