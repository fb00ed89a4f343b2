#!/usr/bin/env bash
# Installs what bench/pull_bench.sh needs beyond hoist's own dependencies (scripts/install-deps.sh),
# from Debian 12 packages: the floor's igzip, GNU time, bc, and the peers.
# Packages that ship a service (docker.io, containerd) are installed without starting it: the
# benchmark runs its own daemons and never the system's.
set -euo pipefail

packages=(isal time bc containerd podman docker.io skopeo umoci)

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
