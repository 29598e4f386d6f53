#!/usr/bin/env bash
# Put promtool and prometheus from Debian's `prometheus` package into .cache/tools/bin, without installing the
# package (no service, no user, no web-asset dependencies): apt-get download + dpkg-deb -x. Once per machine.
#   deploy/tools/install-promtool.sh      prints the promtool path
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin="$root/.cache/tools/bin"

if [[ -x "$bin/promtool" && -x "$bin/prometheus" ]] && "$bin/promtool" --version >/dev/null 2>&1; then
  echo "$bin/promtool"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download prometheus >/dev/null 2>&1; then
  echo "install-promtool: package lists are stale or missing; running apt-get update" >&2
  apt-get update -qq
  apt-get download prometheus
fi
dpkg-deb -x prometheus_*.deb extracted
mkdir -p "$bin"
install -m 0755 extracted/usr/bin/promtool extracted/usr/bin/prometheus "$bin/"
echo "install-promtool: $("$bin/promtool" --version 2>&1 | head -n 1)" >&2
echo "$bin/promtool"
