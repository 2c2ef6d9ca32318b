#!/usr/bin/env bash
# Syntax-checks the examples with the real programs (CI runs it from .ci/run;
# "task examples" too):
#   rsyslog-*.conf    rsyslogd -N1 -f FILE (the origin example also with its
#                     commented TLS action in place of the TCP one)
#   dovecot-*.conf    doveconf -n (included by a minimal dovecot.conf)
#   syslog-ng-*.conf  syslog-ng --syntax-only, run chrooted in the syslog-ng
#                     layer .ci/e2e-prepare builds (syslog-ng conflicts with
#                     rsyslog as a package, so it is never on the host)
#   *.service         systemd-analyze verify (with the packaged unit)
#   postfix-main.cf   checked by go test (TestCheckExamplePostfixConfig:
#                     postconf -n on a copy, and relaygate check)
#   exim-relaygate.conf, sendmail-relaygate.mc, opensmtpd-relaygate.conf
#                     run in the real MTAs by the e2e suite (e2e/mta_test.go)
#   nats-server-*.conf  nats-server -t -c (with stand-in certificates at
#                     the paths it names; its authorization block is also
#                     run by internal/fleet's TestFollowerCannotPublish)
# A missing checker is skipped with a message; with CI=true it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"
failed=0
missing() {
  if [ "${CI:-}" = true ]; then echo "FAIL: $*"; failed=1; else echo "skip: $*"; fi
}

if command -v rsyslogd >/dev/null; then
  for f in examples/rsyslog-*.conf; do
    if [[ $f == *-relp.conf ]] && ! compgen -G '/usr/lib/*/rsyslog/omrelp.so' >/dev/null; then missing "rsyslogd -N1 $f: omrelp not installed (apt-get install rsyslog-relp)"; continue; fi
    if out=$(rsyslogd -N1 -f "$f" 2>&1); then
      echo "ok: rsyslogd -N1 $f"
    else
      echo "FAIL: rsyslogd -N1 $f"; echo "$out"; failed=1
    fi
  done
  # The origin example's commented TLS action, uncommented in place of its
  # TCP action (the e2e suite runs it so, too).
  f=examples/rsyslog-relaygate-origin.conf
  tls=$(mktemp)
  awk '/^    action\(type="omfwd" target="127\.0\.0\.1"/ { skip = 1 }
       skip { if (/\)$/) skip = 0; next }
       /^    # action\(type="omfwd"/ { on = 1 }
       on { sub(/^    # /, "    "); sub(/^    #/, "   "); if (/\)$/) on = 0 }
       { print }' "$f" >"$tls"
  if ! grep -q '^    action(type="omfwd" target="relaygate.example.org"' "$tls"; then
    echo "FAIL: $f: its TLS action could not be uncommented"; failed=1
  elif out=$(rsyslogd -N1 -f "$tls" 2>&1); then
    echo "ok: rsyslogd -N1 $f (its TLS action)"
  else
    echo "FAIL: rsyslogd -N1 $f (its TLS action)"; echo "$out"; failed=1
  fi
  rm -f "$tls"
else
  missing "rsyslogd not installed (apt-get install rsyslog)"
fi

layer=${RELAYGATE_E2E_LAYERS:-/var/tmp/relaygate-e2e/layers}/syslog-ng/upper
if [ -x "$layer/usr/sbin/syslog-ng" ] && [ "$(id -u)" = 0 ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/upper" "$work/work" "$work/root" "$work/ex"
  # Each example is included by a minimal main config that defines the
  # source the examples name (Debian's s_src).
  for f in examples/syslog-ng-*.conf; do
    b=$(basename "$f")
    cp "$f" "$work/ex/$b"
    printf '@version: 3.38\n@include "scl.conf"\nsource s_src { internal(); };\n@include "/mnt/relaygate-ex/%s"\n' "$b" >"$work/ex/main-$b"
  done
  # A private mount namespace: the overlay (the layer over "/", with a
  # throw-away upper directory) vanishes with it. The layer itself is only
  # read: its files are copied into the upper directory, as the e2e suite does.
  cp -a "$layer/." "$work/upper/"
  mkdir -p "$work/upper/mnt/relaygate-ex"
  # syslog-ng checks that TLS files exist: stand-ins at the paths the
  # examples name (their content is only read when a connection is made).
  for p in $(grep -ho -- '-file("/[^"]*")' examples/syslog-ng-*.conf | sed 's/.*("\(.*\)")/\1/' | sort -u); do
    mkdir -p "$work/upper$(dirname "$p")"
    : >"$work/upper$p"
  done
  if out=$(unshare --mount --propagation private -- bash -euo pipefail -c '
      w=$1
      mount -t overlay overlay -o "lowerdir=/,upperdir=$w/upper,workdir=$w/work" "$w/root"
      mount --bind "$w/ex" "$w/root/mnt/relaygate-ex"
      status=0
      for main in "$w"/ex/main-*; do
        name=${main##*/main-}
        if msg=$(chroot "$w/root" /usr/sbin/syslog-ng --syntax-only -f "/mnt/relaygate-ex/${main##*/}" 2>&1); then
          echo "ok: syslog-ng --syntax-only examples/$name"
        else
          echo "FAIL: syslog-ng --syntax-only examples/$name"; echo "$msg"; status=1
        fi
      done
      exit $status
    ' _ "$work" 2>&1); then
    echo "$out"
  else
    echo "$out"; failed=1
  fi
else
  missing "syslog-ng layer not prepared or not root (sudo .ci/e2e-prepare syslog-ng)"
fi

if command -v doveconf >/dev/null; then
  for f in examples/dovecot-*.conf; do
    # Included by a minimal main config, as conf.d would include it;
    # doveconf refuses unknown settings and a policy server without
    # auth_policy_hash_nonce.
    d=$(mktemp -d)
    printf '!include %s\n' "$PWD/$f" >"$d/dovecot.conf"
    if out=$(doveconf -n -c "$d/dovecot.conf" 2>&1) && grep -q '^auth_policy_server_url = ' <<<"$out"; then
      echo "ok: doveconf -n $f"
    else
      echo "FAIL: doveconf -n $f"; echo "$out"; failed=1
    fi
    rm -rf "$d"
  done
else
  missing "doveconf not installed (apt-get install dovecot-core)"
fi

if command -v systemd-analyze >/dev/null; then
  for unit in examples/relaygate.service packaging/deb/relaygate.service; do
    # verify wants ExecStart's binary; a stand-in keeps the check about the
    # unit file itself. It also needs the unit's own name.
    d=$(mktemp -d)
    cp "$unit" "$d/relaygate.service"
    sed -i "s|/usr/bin/relaygate|$d/relaygate|" "$d/relaygate.service"
    printf '#!/bin/sh\n' >"$d/relaygate"; chmod 755 "$d/relaygate"
    if out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$d/relaygate.service" 2>&1) && [ -z "$out" ]; then
      echo "ok: systemd-analyze verify $unit"
    else
      echo "FAIL: systemd-analyze verify $unit"; echo "$out"; failed=1
    fi
    rm -rf "$d"
  done
else
  missing "systemd-analyze not installed"
fi

if command -v nats-server >/dev/null && command -v openssl >/dev/null; then
  for f in examples/nats-server-*.conf; do
    # nats-server loads the certificates it names: stand-ins (a
    # self-signed certificate) in a directory of their own.
    d=$(mktemp -d)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
      -subj /CN=n1.example.org -keyout "$d/n1.key" -out "$d/n1.pem" 2>/dev/null
    cp "$d/n1.pem" "$d/ca.pem"
    sed "s|/etc/nats/tls|$d|g" "$f" >"$d/nats.conf"
    if out=$(nats-server -t -c "$d/nats.conf" 2>&1); then
      echo "ok: nats-server -t $f"
    else
      echo "FAIL: nats-server -t $f"; echo "$out"; failed=1
    fi
    rm -rf "$d"
  done
else
  missing "nats-server or openssl not installed (apt-get install nats-server openssl)"
fi

exit $failed
