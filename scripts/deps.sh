#!/usr/bin/env bash
# Installs the Debian packages airlock needs to build and test, if missing.
# Runs apt-get as root, or through sudo. Safe to run repeatedly.
set -euo pipefail
PKGS=(build-essential cmake ninja-build pkg-config
      libcmocka-dev libjansson-dev libssl-dev libsqlite3-dev
      libpcre2-dev libutf8proc-dev libmicrohttpd-dev libseccomp-dev libgnutls28-dev
      python3 curl iproute2 openssl jq
      libcurl4-openssl-dev docker-registry apache2-utils buildah skopeo)
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js + npm drive the server's SDK tests; a machine may already have
# them from another source (then they are left alone).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null || true
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
