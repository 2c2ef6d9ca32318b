#!/usr/bin/env bash
# Builds the .deb, installs it with dpkg -i, exercises what it installed
# (version, check, the service's command line as the relaygate user), then
# removes and purges it and verifies nothing is left: binary, user, group,
# map directory, conffiles, systemd links. Needs root; CI runs it from
# .ci/run. Loopback only; every process it starts is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/sbin:/sbin"

fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i)"

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if dpkg-query -W -f='${Status}' relaygate 2>/dev/null | grep -q installed; then
  echo "-- purging a relaygate package left installed"
  dpkg -P relaygate >/dev/null
fi
if getent passwd relaygate >/dev/null; then
  fail "a user relaygate exists and no package owns it; not touching it"
fi

echo "-- build"
deb=$(VERSION=${VERSION:-0.0~ci} bash packaging/deb/build-deb.sh "$work/dist")
dpkg-deb --info "$deb" >/dev/null

echo "-- dpkg -i $deb"
dpkg -i "$deb" 2>&1
[ "$(command -v relaygate)" = /usr/bin/relaygate ] || fail "relaygate is not /usr/bin/relaygate"
relaygate version | grep -q '^relaygate ' || fail "relaygate version"
relaygate version
getent passwd relaygate >/dev/null || fail "no relaygate user after install"
[ "$(stat -c %U:%G:%a /var/lib/relaygate)" = relaygate:relaygate:755 ] || fail "/var/lib/relaygate: $(stat -c %U:%G:%a /var/lib/relaygate)"
conffiles=$(dpkg-query -W -f='${Conffiles}' relaygate)
for f in /etc/default/relaygate /etc/relaygate/exclude; do
  grep -q " $f " <<<"$conffiles" || fail "$f is not a conffile"
done
[ -f /lib/systemd/system/relaygate.service ] || fail "no systemd unit"
[ -f /usr/share/man/man8/relaygate.8.gz ] || fail "no man page"

echo "-- relaygate check against this machine's Postfix"
set +e
out=$(relaygate check -map /var/lib/relaygate/pop-before-smtp.cdb -user relaygate 2>&1)
code=$?
set -e
echo "$out"
# Debian's default Postfix does not reference the map, so problems are
# expected here: the check must run and report, not pass.
[ "$code" -le 1 ] || fail "check exited $code"
grep -qx 'ok: user relaygate may create files in the map directory /var/lib/relaygate' <<<"$out" || fail "check: map directory not writable by relaygate"
if grep -v -e '^ok: ' -e '^note: ' -e '^PROBLEM: .* — fix: ' -e '^relaygate check: [0-9]* problem(s) found$' <<<"$out"; then
  fail "check printed lines that are neither ok:, note: nor PROBLEM: … — fix: …"
fi

echo "-- relaygate check passes on a copy of the Postfix config after its own postconf fixes"
pf=$work/postfix
mkdir "$pf"
cp /etc/postfix/main.cf /etc/postfix/master.cf "$pf/"
passed=
for _ in 1 2 3; do
  # Postfix waits for a just-written main.cf to age; backdate it.
  touch -d '1 minute ago' "$pf/main.cf"
  if out=$(relaygate check -postfix-config "$pf" -map /var/lib/relaygate/pop-before-smtp.cdb 2>&1); then
    passed=1; break
  fi
  fixes=$(sed -n 's/^PROBLEM: .* — fix: \(postconf -c [^ ]* -e '"'"'[^'"'"']*'"'"'\).*/\1/p' <<<"$out")
  [ -n "$fixes" ] || { echo "$out"; fail "problems without a postconf fix"; }
  while IFS= read -r fix; do echo "   $fix"; sh -c "$fix"; done <<<"$fixes"
done
echo "$out"
[ -n "$passed" ] || fail "check still fails after applying its fixes"

echo "-- the packaged command line, run as the relaygate user"
# shellcheck disable=SC1091
. /etc/default/relaygate
# The packaged ports may be taken on a developer's machine; the map, the
# exclusion file and the user are what is tested here.
# shellcheck disable=SC2086
setpriv --reuid=relaygate --regid=relaygate --init-groups \
  /usr/bin/relaygate serve $RELAYGATE_ARGS -udp 127.0.0.1:0 -tcp 127.0.0.1:0 -metrics 127.0.0.1:0 2>"$work/log" &
pid=$!
listening=
for _ in $(seq 100); do
  listening=$(grep -m1 '"message":"relaygate listening"' "$work/log" || true)
  [ -n "$listening" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/log"; fail "relaygate exited at startup"; }
  sleep 0.1
done
[ -n "$listening" ] || { cat "$work/log"; fail "relaygate did not start"; }
udp=$(sed -n 's/.*"udp":"127.0.0.1:\([0-9]*\)".*/\1/p' <<<"$listening")
metrics=$(sed -n 's/.*"metrics":"\([^"]*\)".*/\1/p' <<<"$listening")
logger -n 127.0.0.1 -P "$udp" -d --rfc3164 -t dovecot \
  'pop3-login: Login: user=<ci>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1'
granted=
for _ in $(seq 50); do
  if relaygate status -metrics "$metrics" | grep -q '^192\.0\.2\.10 .* ci '; then granted=1; break; fi
  sleep 0.1
done
relaygate status -metrics "$metrics"
[ -n "$granted" ] || { cat "$work/log"; fail "login not granted"; }
if command -v postmap >/dev/null && postconf -m | grep -qx cdb; then
  # /grants is the live table; the map follows within -flush (1 s).
  seen=
  for _ in $(seq 50); do
    if [ "$(postmap -q 192.0.2.10 cdb:/var/lib/relaygate/pop-before-smtp)" = OK ]; then seen=1; break; fi
    sleep 0.1
  done
  [ -n "$seen" ] || fail "postmap does not see the grant"
fi
[ "$(stat -c %U:%a /var/lib/relaygate/pop-before-smtp.cdb)" = relaygate:644 ] || fail "map owner/mode"
[ "$(stat -c %U:%a /var/lib/relaygate/pop-before-smtp.state)" = relaygate:600 ] || fail "state owner/mode"
exec 3<>"/dev/tcp/${metrics%:*}/${metrics##*:}"
printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3
health=$(cat <&3)
exec 3<&-
grep -q '^HTTP/1.0 200' <<<"$health" || fail "/healthz: $health"
kill -TERM "$pid"
code=0
wait "$pid" || code=$?
pid=
[ "$code" = 0 ] || { cat "$work/log"; fail "relaygate exited $code after SIGTERM"; }

echo "-- dpkg -r: the binary goes, conffiles and the user stay"
dpkg -r relaygate
[ ! -e /usr/bin/relaygate ] || fail "/usr/bin/relaygate left after dpkg -r"
[ -f /etc/default/relaygate ] || fail "conffile removed by dpkg -r"
getent passwd relaygate >/dev/null || fail "user removed by dpkg -r (only purge should)"

echo "-- dpkg -P: nothing left"
dpkg -P relaygate
! getent passwd relaygate >/dev/null || fail "user relaygate left after purge"
! getent group relaygate >/dev/null || fail "group relaygate left after purge"
for f in /var/lib/relaygate /etc/default/relaygate /etc/relaygate /lib/systemd/system/relaygate.service; do
  [ ! -e "$f" ] || fail "$f left after purge"
done
if find /etc/systemd/system -name 'relaygate*' 2>/dev/null | grep -q .; then
  fail "systemd links left: $(find /etc/systemd/system -name 'relaygate*')"
fi
! dpkg-query -W -f='${Status}' relaygate 2>/dev/null | grep -q installed || fail "package still known to dpkg"
echo "test-deb: ok"
