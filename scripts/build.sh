#!/usr/bin/env bash
# Configures and builds hoist (and its tests) into ./build. Extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHOIST_WERROR=ON "$@" >/dev/null
cmake --build build -j "$(nproc)"
