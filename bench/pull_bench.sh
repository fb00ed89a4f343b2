#!/usr/bin/env bash
# The pull benchmark: hoist, the floor and the other pullers side by side, in one run.
#
# An image built from this machine's own files (by default 7 layers, ~27k files, ~730 MB of
# tar), served by a docker-registry on loopback, is pulled cold, round after round (round 1
# of every measure, then round 2, ...), on each filesystem asked for; the medians go into one
# table with their ratios and the targets of the speed issue. See bench/README.md.
#
# Usage: bench/pull_bench.sh [ROUNDS]   (default 3; knobs: BENCH_* below and in the README)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
places=${BENCH_WHERE:-"tmpfs disk"}          # tmpfs and/or disk
scales=${BENCH_SCALES:-"1 2 4"}              # the image at these multiples of its size
peer_names=${BENCH_PEERS:-"ctr podman docker skopeo"}
tmpfs_root=${BENCH_TMPFS_DIR:-/dev/shm}     # must be a tmpfs
disk_root=${BENCH_DISK_DIR:-/var/tmp}       # must be a real disk
dirs=${BENCH_DIRS:-"/usr/include /usr/lib/gcc /usr/share/doc /usr/share/locale /usr/lib/python3 /usr/share/i18n /usr/share/zoneinfo"}
# How hoist writes a flattened rootfs ($store, $ref, $dest): today a pull, then an unpack.
rootfs_cmd=${BENCH_ROOTFS_CMD:-'hoist --store "$store" pull -q "$ref" && hoist --store "$store" unpack "$ref" "$dest"'}

case " $scales " in *" 1 "*) ;; *) scales="1 $scales" ;; esac # 1x is what the others compare to
for p in $places; do
  case $p in tmpfs | disk) ;; *) echo "BENCH_WHERE: tmpfs and/or disk, not '$p'" >&2 && exit 2 ;; esac
done

# --- setup: packages, the two binaries, the registry, the directories, cleanup on exit.
if [ "${BENCH_INSTALL:-1}" = 1 ]; then
  bench/install-deps.sh
fi
if [ "${BENCH_BUILD:-1}" = 1 ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHOIST_WERROR=ON >/dev/null
  cmake --build build -j "$(nproc)" --target hoist_cli hoist_seed >/dev/null
fi
hoist_bin=$PWD/build/tools/hoist/hoist
seed_bin=$PWD/build/tests/hoist-seed

REGISTRY_ACCESSLOG=1 # to count the manifest requests of a re-pull
. scripts/registry.sh
. bench/peers.sh
for p in $peer_names; do
  declare -F "peer_${p}_pull" >/dev/null || { echo "BENCH_PEERS: no peer '$p' (ctr podman docker skopeo)" >&2 && exit 2; }
done
declare -A base # place -> its scratch directory
sock_base=""
cleanup() {
  stop_daemons
  local p
  for p in "${!base[@]}"; do
    umount_under "${base[$p]}"
    rm -rf "${base[$p]}"
  done
  [ -z "$sock_base" ] || rm -rf "$sock_base"
  stop_registry
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_registry "$disk_root/hoist-bench-registry.XXXXXX"
sock_base=$(mktemp -d /tmp/hoist-bench-run.XXXXXX)
for p in $places; do
  root=$tmpfs_root
  if [ "$p" = disk ]; then root=$disk_root; fi
  base[$p]=$(mktemp -d "$root/hoist-bench.XXXXXX")
  fstype=$(stat -f -c %T "${base[$p]}")
  if [ "$p" = tmpfs ] && [ "$fstype" != tmpfs ]; then
    echo "BENCH_TMPFS_DIR=$tmpfs_root is $fstype, not tmpfs" >&2 && exit 2
  fi
  if [ "$p" = disk ] && [ "$fstype" = tmpfs ]; then
    echo "BENCH_DISK_DIR=$disk_root is a tmpfs" >&2 && exit 2
  fi
done
results=$work/results # one line per run: place measure round seconds peak-RSS-KiB extra
: >"$results"

# --- the images: one per scale, and the 1x image with its top layer changed.
host=127.0.0.1:$port
declare -A refs sizes # image name (1x, 1x-top, 2x, ...) -> its reference, its compressed bytes
seed_args=()
for d in $dirs; do seed_args+=(--dir "$d"); done
seed() { # seed NAME HOIST-SEED-ARGS...: pushes bench/app:NAME (and what the args add)
  local name=$1
  shift
  "$seed_bin" "$@" "${seed_args[@]}" "$host" "bench/app:$name" >"$work/seed.$name"
}
# Seeding is mostly gzip: two images are built at a time.
pids=()
for s in $scales; do
  if [ "$s" = 1 ]; then seed 1x --changed-top 1x-top & else seed "${s}x" --copies "$s" & fi
  pids+=($!)
  if [ ${#pids[@]} -ge 2 ]; then
    wait "${pids[0]}"
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p"; done
for f in "$work"/seed.*; do # "pushed HOST/bench/app:NAME: 7 layers, N bytes, DIGEST"
  while read -r _ pushed _ _ n _; do
    name=${pushed%:} && name=${name##*:}
    refs[$name]=$host/bench/app:$name
    sizes[$name]=$n
  done <"$f"
  cat "$f" >&2
done
layers=$(curl -fsS -H "Accept: application/vnd.oci.image.manifest.v1+json" \
  "http://$host/v2/bench/app/manifests/1x" |
  python3 -c 'import json,sys; [print(l["digest"]) for l in json.load(sys.stdin)["layers"]]')
layer_count=$(echo "$layers" | wc -l)
files=$(for l in $layers; do curl -fsS "http://$host/v2/bench/app/blobs/$l" | igzip -dc | tar -t; done | wc -l)

# --- helpers
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
# timed CMD...: runs CMD; sets $secs to its wall time (and keeps CMD's exit status).
timed() {
  local t0=$EPOCHREALTIME rc=0
  "$@" || rc=$?
  secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
  return $rc
}
# hoist ARGS...: the hoist binary, its peak RSS (KiB) appended to $rss_log.
rss_log=$work/rss
hoist() { /usr/bin/time -f %M -a -o "$rss_log" "$hoist_bin" "$@"; }
peak_rss() { grep -E '^[0-9]+$' "$rss_log" | sort -n | tail -1; }
record() { # record PLACE MEASURE ROUND SECS [RSS [EXTRA]]
  echo "$1 $2 $3 $4 ${5:--} ${6:--}" >>"$results"
  printf '[%2d:%02d round %s/%s] %-6s %-14s %8s s %s\n' $((SECONDS / 60)) $((SECONDS % 60)) \
    "$3" "$rounds" "$1" "$2" "$4" "${6:-}" >&2
}
manifest_requests_since() { # LINE: manifest requests the registry logged after line LINE
  sleep 0.2 # the registry logs a request after answering it
  tail -n +"$(($1 + 1))" "$work/registry.log" | grep -cE '"(GET|HEAD) /v2/[^ ]*/manifests/' || true
}

# --- the measures. Each gets a fresh empty DIR on the place measured, and records its runs.
# hoist: a cold pull, then on the same store an unchanged re-pull (warm caches), then a pull
# of the tag whose top layer alone differs (cold caches).
measure_hoist() {
  local place=$1 round=$2 store=$3/store n
  : >"$rss_log" && drop_caches
  timed hoist --store "$store" pull -q "${refs[1x]}" >/dev/null || return 1
  record "$place" hoist_cold "$round" "$secs" "$(peak_rss)"
  : >"$rss_log" && n=$(wc -l <"$work/registry.log")
  timed hoist --store "$store" pull -q "${refs[1x]}" >/dev/null || return 1
  record "$place" hoist_repull "$round" "$secs" "$(peak_rss)" "$(manifest_requests_since "$n")"
  : >"$rss_log" && drop_caches
  timed hoist --store "$store" pull -q "${refs[1x-top]}" >/dev/null || return 1
  record "$place" hoist_top "$round" "$secs" "$(peak_rss)"
}
measure_rootfs() {
  local place=$1 round=$2 store=$3/store dest=$3/rootfs ref=${refs[1x]}
  : >"$rss_log" && drop_caches
  timed eval "$rootfs_cmd" >/dev/null || return 1
  record "$place" hoist_rootfs "$round" "$secs" "$(peak_rss)"
}
measure_scale() { # the cold pull of the image at $scale times its size
  local place=$1 round=$2 dir=$3
  : >"$rss_log" && drop_caches
  timed hoist --store "$dir/store" pull -q "${refs[${scale}x]}" >/dev/null || return 1
  record "$place" "hoist_cold_${scale}x" "$round" "$secs" "$(peak_rss)"
}
floor_seq() { # every layer in order into one directory
  local l
  for l in $layers; do bench/floor_layer.sh "http://$host/v2/bench/app/blobs/$l" "$1/rootfs" || return 1; done
}
floor_par2() { # two layers at a time, each into its own directory
  echo "$layers" | xargs -P 2 -I{} bench/floor_layer.sh "http://$host/v2/bench/app/blobs/{}" "$1/{}"
}
measure_floor_seq() { drop_caches && timed floor_seq "$3" && record "$1" floor_seq "$2" "$secs"; }
measure_floor_par2() { drop_caches && timed floor_par2 "$3" && record "$1" floor_par2 "$2" "$secs"; }
measure_peer() { # peer_NAME_pull drops the caches itself, after starting its daemons
  peer_"${peer}"_pull "$3" "${refs[1x]}" && record "$1" "peer_$peer" "$2" "$secs"
}

# run PLACE ROUND FUNCTION: FUNCTION PLACE ROUND DIR in a fresh DIR, removed afterwards; a
# failure is recorded and the run goes on.
run() {
  local dir=${base[$1]}/m
  umount_under "$dir" && rm -rf "$dir" && mkdir -p "$dir"
  if ! "$3" "$1" "$2" "$dir"; then
    echo "[round $2/$rounds] $1: $3 ${peer:-} ${scale:-} FAILED" >&2
    echo "$1 failed:$3${peer:+:$peer}${scale:+:$scale} $2 - - -" >>"$results"
  fi
  umount_under "$dir" && rm -rf "$dir"
}

installed_peers=""
for peer in $peer_names; do
  if peer_"${peer}"_installed; then installed_peers+=" $peer"; fi
done

echo "== seeded in $((SECONDS / 60)) min $((SECONDS % 60)) s; $files entries in $layer_count layers; $rounds round(s) on: $places; scales: $scales; peers:${installed_peers:- none}" >&2
for round in $(seq 1 "$rounds"); do
  for place in $places; do
    peer="" scale=""
    run "$place" "$round" measure_hoist
    run "$place" "$round" measure_rootfs
    run "$place" "$round" measure_floor_seq
    run "$place" "$round" measure_floor_par2
    for scale in $scales; do
      [ "$scale" = 1 ] || run "$place" "$round" measure_scale
    done
    scale=""
    for peer in $installed_peers; do run "$place" "$round" measure_peer; done
    peer=""
  done
done
elapsed=$SECONDS

# --- the table
. bench/report.sh
