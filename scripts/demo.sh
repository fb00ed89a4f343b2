#!/usr/bin/env bash
# hoist's main job, end to end on one machine: install what is needed, build, start a registry
# on loopback, push an image built here (hoist's own headers, sources and binary, as three
# layers), pull it with hoist, show what the store holds, pull again (nothing to transfer),
# and stop the registry.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh >/dev/null

. scripts/registry.sh
start_registry /tmp/hoist-demo.XXXXXX
echo "== registry on 127.0.0.1:$port"

mkdir -p "$work/bin" && cp build/tools/hoist/hoist "$work/bin/"
build/tests/hoist-seed --dir include --dir src --dir "$work/bin" "127.0.0.1:$port" demo/hoist:1

hoist=(build/tools/hoist/hoist --store "$work/store")
echo; echo "== hoist pull 127.0.0.1:$port/demo/hoist:1"
"${hoist[@]}" pull "127.0.0.1:$port/demo/hoist:1"
echo; echo "== hoist images"
"${hoist[@]}" images
echo; echo "== hoist inspect (platform and layers)"
"${hoist[@]}" inspect "127.0.0.1:$port/demo/hoist:1" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("digest  ", d["digest"]); print("platform", d["platform"])
for l in d["layers"]: print("layer   ", l["digest"], l["size"])'
echo; echo "== pull again: one manifest request, no blob"
"${hoist[@]}" pull "127.0.0.1:$port/demo/hoist:1"
echo; echo "== the store is an OCI image layout"
find "$work/store" -maxdepth 2 | sed "s|$work/||" | sort
