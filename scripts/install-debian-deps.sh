#!/usr/bin/env bash
# Install the Debian packages the test suite's system lanes need (listed in
# scripts/debian-packages.txt, one per line, '#' comments). Best effort by design: on a machine
# where we are not root or have no apt-get, it prints what is missing and exits 0; the lanes that
# need a package then skip with a loud reason, and fail instead under CI=true.
set -uo pipefail
cd "$(dirname "$0")"
mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' debian-packages.txt | grep -v '^$')
missing=()
for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "install-debian-deps: not root or no apt-get; missing: ${missing[*]} (their test lanes will skip)" >&2
    exit 0
fi
echo "install-debian-deps: apt-get install ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || echo "install-debian-deps: apt-get failed for: ${missing[*]} (their test lanes will skip)" >&2
exit 0
