#!/usr/bin/env bash
# Builds the relaygate .deb with dpkg-deb alone (no debhelper, no nfpm):
#   packaging/deb/build-deb.sh [OUTDIR]          (default: dist)
# VERSION sets the package version (default 0.0~dev); GOARCH picks the
# architecture (default: the machine's). Prints the path of the .deb.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-dist}
version=${VERSION:-0.0~dev}
goarch=${GOARCH:-$(go env GOARCH)}
case "$goarch" in
  amd64|arm64|i386|riscv64|ppc64el|s390x) debarch=$goarch ;;
  386) debarch=i386 ;;
  arm) debarch=armhf ;;
  ppc64le) debarch=ppc64el ;;
  *) echo "build-deb: no Debian architecture for GOARCH=$goarch" >&2; exit 1 ;;
esac
pkg=packaging/deb
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
# mktemp makes the directory 0700; it becomes "./" in the archive.
chmod 0755 "$root"

# A static binary: the package then depends on no particular libc.
mkdir -p "$root/usr/bin"
CGO_ENABLED=0 GOARCH=$goarch go build -trimpath -ldflags="-s -w" -o "$root/usr/bin/relaygate" ./cmd/relaygate

install -D -m 0644 "$pkg/relaygate.service" "$root/lib/systemd/system/relaygate.service"
install -D -m 0644 "$pkg/default" "$root/etc/default/relaygate"
install -D -m 0644 examples/exclude.example "$root/etc/relaygate/exclude"
install -d "$root/usr/share/man/man8"
gzip -9n < docs/relaygate.8 > "$root/usr/share/man/man8/relaygate.8.gz"
doc="$root/usr/share/doc/relaygate"
install -D -m 0644 "$pkg/copyright" "$doc/copyright"
for f in README.md SECURITY.md docs/MIGRATING.md docs/TROUBLESHOOTING.md docs/CENTRAL-LOG-HOST.md; do
  if [ -f "$f" ]; then install -m 0644 "$f" "$doc/$(basename "$f")"; fi
done
install -d "$doc/examples"
for f in examples/*; do install -m 0644 "$f" "$doc/examples/"; done

install -d "$root/DEBIAN"
for s in postinst prerm postrm; do install -m 0755 "$pkg/$s" "$root/DEBIAN/$s"; done
# Everything under /etc is a conffile: dpkg keeps an operator's edits
# across upgrades and removes them only on purge.
(cd "$root" && find etc -type f | sed 's|^|/|' | sort) > "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$debarch/" -e "s/@SIZE@/$size/" "$pkg/control.in" > "$root/DEBIAN/control"

mkdir -p "$out"
deb="$out/relaygate_${version}_${debarch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
