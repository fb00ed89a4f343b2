#!/usr/bin/env bash
# hoist serve against docker-registry on one 1 GiB blob over loopback: the download speed curl
# reports (three runs each) and each server's peak RSS (VmHWM, read before it is stopped).
# The blob is a gzip layer of random data (skopeo compresses the tar of a 1 GiB random file as it
# pushes), pulled into a fresh store that `hoist serve` then serves.
# As root, `hoist serve --user nobody` is measured too.
# Usage: bench/serve.sh   (after scripts/install-deps.sh; builds hoist into build/)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${BENCH_BUILD:-1}" = 1 ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHOIST_WERROR=ON >/dev/null
  cmake --build build -j 2 --target hoist_cli >/dev/null
fi
hoist_bin=$PWD/build/tools/hoist/hoist
. scripts/registry.sh
start_registry "${BENCH_DISK_DIR:-/var/tmp}/hoist-serve-bench.XXXXXX"
serve_pid=""
user_pid=""
cleanup() {
  for pid in $serve_pid $user_pid; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  stop_registry
}
trap cleanup EXIT

head -c 1073741824 /dev/urandom >"$work/big"
tar -C "$work" -cf "$work/layer.tar" big
rm "$work/big"
push_layer_image "$work/layout" "$work/layer.tar" application/vnd.oci.image.layer.v1.tar "" big:1
rm -rf "$work/layout"

store=$work/store
: >"$work/registries.conf"
HOIST_REGISTRIES_CONF=$work/registries.conf "$hoist_bin" --store "$store" pull -q "127.0.0.1:$port/big:1" >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$1/v2/" >/dev/null 2>&1 && break; sleep 0.1; done; }
serve_port=$(free_port)
"$hoist_bin" --store "$store" serve --listen "127.0.0.1:$serve_port" 2>"$work/serve.log" &
serve_pid=$!
wait_up "$serve_port"
servers="docker-registry:$port hoist-serve:$serve_port"
# As root, also `hoist serve --user nobody`: blobs passed over from the root process.
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
  user_port=$(free_port)
  "$hoist_bin" --store "$store" serve --user nobody --listen "127.0.0.1:$user_port" 2>"$work/serve-user.log" &
  user_pid=$!
  wait_up "$user_port"
  servers="$servers serve-as-nobody:$user_port"
fi
layer=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://127.0.0.1:$serve_port/v2/big/manifests/1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"])')

printf '%-16s %12s %10s\n' server bytes MB/s
for _ in 1 2 3; do
  for server in $servers; do
    read -r size speed < <(curl -fsS -L -o /dev/null -w '%{size_download} %{speed_download}\n' \
      "http://127.0.0.1:${server#*:}/v2/big/blobs/$layer")
    printf '%-16s %12s %10d\n' "${server%%:*}" "$size" $((${speed%.*} / 1000000))
  done
done
hwm() { awk '/VmHWM/ {print int($2 / 1024) " MiB"}' "/proc/$1/status"; }
echo "peak RSS: hoist serve $(hwm "$serve_pid"); docker-registry $(hwm "$registry_pid") (push included)"
if [ -n "$user_pid" ]; then
  echo "peak RSS with --user: root process $(hwm "$user_pid"), serving process $(hwm "$(pgrep -P "$user_pid")")"
fi
