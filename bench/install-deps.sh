#!/usr/bin/env bash
# Installs what bench/pull_bench.sh needs: hoist's own dependencies and, through the same script
# (scripts/install-deps.sh), the floor's igzip, GNU time, bc, and the peers. No service a
# package ships is started: the benchmark runs its own daemons and never the system's.
set -euo pipefail

exec "$(dirname "$0")/../scripts/install-deps.sh" isal time bc containerd podman docker.io skopeo umoci
