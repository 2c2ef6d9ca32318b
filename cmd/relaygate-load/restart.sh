#!/bin/bash
# restart.sh RELAYGATE [plain|takeover] — restart a relaygate holding 1M
# grants while relaygate-load streams 10,000 msg/s of syslog over UDP at it,
# and report what the restart lost.
#
#   plain     SIGTERM, wait for the exit, start a new one (what systemctl
#             restart does): the port is closed between the two.
#   takeover  start the new one with -takeover while the old one runs; it
#             joins the port, stops the old one and waits for its lock.
#
# Env: LOAD (relaygate-load binary), PORT (loopback UDP port), W (work dir),
# GRANTS (grants in the state file, default 1048576). Linux only (reads
# /proc/net/snmp and /proc/net/udp). Loopback only.
set -u
RG=$1; MODE=${2:-plain}
LOAD=${LOAD:-relaygate-load}; PORT=${PORT:-55140}; GRANTS=${GRANTS:-1048576}
W=${W:-/tmp/relaygate-restart}/$MODE; rm -rf "$W"; mkdir -p "$W"
python3 - "$W" "$GRANTS" <<'PY'
import sys,datetime
w,n=sys.argv[1],int(sys.argv[2])
exp=(datetime.datetime.now(datetime.timezone.utc)+datetime.timedelta(hours=10)).strftime('%Y-%m-%dT%H:%M:%SZ')
with open(w+'/pbs.state','w') as f:
    f.write('{"relaygate_state":1}\n')
    for i in range(n):
        f.write('{"addr":"172.%d.%d.%d","expires":"%s","user":"user%d@example.org","daemon":"dovecot","host":"mx1"}\n'%(16+(i>>16),(i>>8)&255,i&255,exp,i))
PY
start() { # name [extra flags]
  local name=$1; shift
  "$RG" serve -udp 127.0.0.1:$PORT -tcp "" -mynetworks none -grace 10h -max-entries 2000000 \
     -map "$W/pbs.cdb" -state "$W/pbs.state" -log-format json "$@" 2>>"$W/log.$name" &
  echo $! > "$W/pid.$name"
}
waitlog() { # name message
  for _ in $(seq 3000); do grep -q "\"message\":\"$2\"" "$W/log.$1" && return; sleep 0.01; done
  echo "$1: no \"$2\""; exit 1
}
noports() { awk '/^Udp:/{if(++n==2)print $3}' /proc/net/snmp; }
hexport=$(printf '%04X' "$PORT")
# sockets bound to the port, each with its drop count, sampled every ms:
# when the port had no socket at all, and the highest drop count seen.
python3 - "$hexport" "$W/ports" <<'PY' &
import os,sys,time
port,out=':'+sys.argv[1],sys.argv[2]
closed=0.0; last=None; drops={}; t0=time.time(); open_since=None
while time.time()-t0 < 90:
    now=time.time(); n=0
    for l in open('/proc/net/udp').read().splitlines()[1:]:
        f=l.split()
        if f[1].endswith(port):
            n+=1; drops[f[9]]=max(drops.get(f[9],0),int(f[-1]))
    if n==0 and open_since is None: open_since=now
    if n and open_since is not None: closed+=now-open_since; open_since=None
    with open(out+'.tmp','w') as o: o.write('%.3f %d\n'%(closed,sum(drops.values())))
    os.replace(out+'.tmp',out)
    time.sleep(0.001)
PY
POLL=$!
start a; waitlog a "relaygate listening"
np0=$(noports)
"$LOAD" -target udp://127.0.0.1:$PORT -count 150000 -rate 10000 -verify -map "$W/pbs.cdb" -wait 60s > "$W/load.out" 2>&1 &
LP=$!
sleep 3
A=$(cat "$W/pid.a"); t0=$(date +%s.%N)
if [ "$MODE" = takeover ]; then
  start b -takeover
  while kill -0 "$A" 2>/dev/null; do sleep 0.01; done; t1=$(date +%s.%N)
else
  kill -TERM "$A"; while kill -0 "$A" 2>/dev/null; do sleep 0.01; done; t1=$(date +%s.%N)
  start b
fi
waitlog b "relaygate listening"; t2=$(date +%s.%N)
wait $LP
np1=$(noports)
kill -TERM "$(cat "$W/pid.b")"; wait "$(cat "$W/pid.b")"
kill $POLL 2>/dev/null; wait $POLL 2>/dev/null
read -r closed drops < "$W/ports"
echo "mode $MODE: old one exited $(echo "$t1-$t0"|bc)s after the restart began; new one serving (state loaded) $(echo "$t2-$t0"|bc)s after"
echo "time the port had no socket: ${closed}s; datagrams to no socket (Udp NoPorts): $((np1-np0)); socket buffer drops: $drops"
tail -3 "$W/load.out"
