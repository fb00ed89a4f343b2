#!/usr/bin/env bash
# Installs everything hoist needs to build, test and run its demo, from Debian 12 packages.
set -euo pipefail

packages=(
  build-essential cmake pkg-config ca-certificates python3 curl
  libcurl4-openssl-dev libssl-dev nlohmann-json3-dev libcli11-dev
  libzstd-dev libisal-dev zlib1g-dev libsqlite3-dev libtomlplusplus-dev
  libgtest-dev libgmock-dev
  docker-registry apache2-utils skopeo umoci
  docker.io podman
  man-db groff-base zsh fish
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The docker-registry and docker.io packages start system daemons; hoist's demo and tests run
# their own (on private sockets and directories), so leave the system ones stopped.
for unit in docker-registry docker docker.socket; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$unit" 2>/dev/null; then
    $sudo systemctl stop "$unit" || true
  fi
done
