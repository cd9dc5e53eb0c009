#!/usr/bin/env bash
# Install the Debian packages that a make target needs, when any is missing: as root with
# apt-get (noninteractive); as anyone else, print the one command to run, and stop.
#   bash vsync/deploy/system-packages.sh PACKAGE...
set -euo pipefail

missing=()
for package in "$@"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "make: these Debian packages are missing and this is not a Debian system: ${missing[*]}" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "make: missing Debian packages: ${missing[*]}" >&2
  echo "make: run this once as root, then run make again:" >&2
  echo "  sudo sh -c 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}'" >&2
  exit 1
fi
echo "make: installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
