#!/usr/bin/env bash
# Installs everything hoist needs to build, test and run its demo, from Debian 12 packages, and
# the packages named as arguments (bench/install-deps.sh adds the benchmark's).
# Packages that ship a service (docker-registry, docker.io, containerd, nginx) are installed
# without starting it: hoist's demo, tests and benchmark run their own daemons, never the
# system's.
set -euo pipefail

packages=(
  build-essential cmake pkg-config ca-certificates python3 curl
  libcurl4-openssl-dev libssl-dev nlohmann-json3-dev libcli11-dev
  libzstd-dev libisal-dev zlib1g-dev libsqlite3-dev libtomlplusplus-dev
  libgpgme-dev libyaml-cpp-dev gnupg libmicrohttpd-dev libcrypt-dev libgnutls28-dev
  libgtest-dev libgmock-dev
  docker-registry apache2-utils skopeo umoci openssl
  docker.io podman
  man-db groff-base zsh fish
  nginx
  iproute2 util-linux
  "$@"
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
# invoke-rc.d and deb-systemd-invoke start no service while policy-rc.d says 101. Only a
# policy-rc.d made here is removed again.
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  policy=/usr/sbin/policy-rc.d
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  trap '$sudo rm -f "$policy"' EXIT
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Leave the system's daemons stopped (a policy-rc.d of the system's own may have let them start).
for unit in docker-registry docker docker.socket nginx; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$unit" 2>/dev/null; then
    $sudo systemctl stop "$unit" || true
  fi
done
