#!/usr/bin/env bash
# Install the Debian packages apq needs, only those missing; through sudo when not root.
set -euo pipefail
PKGS="gcc make libopenblas-dev libhdf5-dev libgsl-dev libcsv-dev libinih-dev zlib1g-dev
      gnuplot-nox dataset-fashion-mnist git ${EXTRA_PKGS:-}"
missing=()
if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "apq: this system has no apt/dpkg; install these Debian packages (or their equivalents) by hand:" >&2
    echo "  $PKGS" | tr -s ' \n' ' ' >&2; echo >&2
    exit 1
fi
for p in $PKGS; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "apq: installing missing Debian packages: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "apq: not root and no sudo; run as root: apt-get install ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2 || true
$SUDO apt-get install -y -qq "${missing[@]}" >&2 || {
    echo "apq: apt-get could not install: ${missing[*]}" >&2; exit 1; }
