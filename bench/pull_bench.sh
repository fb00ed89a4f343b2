#!/usr/bin/env bash
# The pull benchmark: an image built from this machine's own files (7 layers, ~27k files,
# ~730 MB of tar), served by a registry on loopback, pulled
#   - by `hoist pull`, cold (fresh store) and again unchanged, with wall time and peak RSS;
#   - by the floor: `curl | igzip -dc | tar -x` for each layer, two layers at a time (no
#     hashing, no verification);
#   - by `skopeo copy` + `umoci unpack` (unpacking to a flattened rootfs).
# Usage: bench/pull_bench.sh [RUNS]   (BENCH_DIRS="dir1 dir2 ..." to choose the layers)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
scripts/install-deps.sh
for p in isal time; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="${missing:-} $p"
done
if [ -n "${missing:-}" ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
scripts/build.sh >/dev/null

dirs=${BENCH_DIRS:-"/usr/include /usr/lib/gcc /usr/share/doc /usr/share/locale /usr/lib/python3 /usr/share/i18n /usr/share/zoneinfo"}
. scripts/registry.sh
start_registry /var/tmp/hoist-bench.XXXXXX
ref="127.0.0.1:$port/bench/app:1"

seed_args=()
for d in $dirs; do seed_args+=(--dir "$d"); done
echo "== image: $(build/tests/hoist-seed "${seed_args[@]}" "127.0.0.1:$port" bench/app:1)"
layers=$(curl -fsS -H "Accept: application/vnd.oci.image.manifest.v1+json" \
  "http://127.0.0.1:$port/v2/bench/app/manifests/1" |
  python3 -c 'import json,sys; [print(l["digest"]) for l in json.load(sys.stdin)["layers"]]')
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

hoist=build/tools/hoist/hoist
cold=() rss=()
for i in $(seq 1 "$runs"); do
  rm -rf "$work/store"; drop_caches
  /usr/bin/time -f "%e %M" -o "$work/t" "$hoist" --store "$work/store" pull -q "$ref" >/dev/null
  read -r secs kb <"$work/t"; cold+=("$secs"); rss+=("$kb")
done
warm=()
for i in $(seq 1 5); do
  /usr/bin/time -f "%e" -o "$work/t" "$hoist" --store "$work/store" pull -q "$ref" >/dev/null
  warm+=("$(cat "$work/t")")
done

floor=()
for i in $(seq 1 "$runs"); do
  rm -rf "$work/floor"; mkdir -p "$work/floor"; drop_caches
  start=$(date +%s.%N)
  echo "$layers" | xargs -P 2 -I{} sh -c \
    'd=$(echo {} | cut -d: -f2); mkdir -p '"$work"'/floor/$d && curl -fsS '"http://127.0.0.1:$port"'/v2/bench/app/blobs/{} | igzip -dc | tar -x -C '"$work"'/floor/$d'
  floor+=("$(echo "$(date +%s.%N) - $start" | bc)")
done

peers="skipped (skopeo or umoci missing)"
if command -v skopeo >/dev/null && command -v umoci >/dev/null; then
  echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$work/policy.json"
  rm -rf "$work/oci" "$work/bundle"; drop_caches
  start=$(date +%s.%N)
  skopeo --policy "$work/policy.json" copy -q --src-tls-verify=false "docker://$ref" "oci:$work/oci:app"
  umoci unpack --image "$work/oci:app" "$work/bundle" >/dev/null
  peers="$(echo "$(date +%s.%N) - $start" | bc) s"
fi

printf '\n%-44s %s\n' "measure" "median of runs"
printf '%-44s %s s  (runs: %s)\n' "hoist pull, cold (fetch+verify+extract)" "$(printf '%s\n' "${cold[@]}" | median)" "${cold[*]}"
printf '%-44s %s MiB\n' "hoist pull, cold: peak RSS" "$(( $(printf '%s\n' "${rss[@]}" | sort -n | tail -1) / 1024 ))"
printf '%-44s %s s  (runs: %s)\n' "hoist pull, unchanged image" "$(printf '%s\n' "${warm[@]}" | median)" "${warm[*]}"
printf '%-44s %s s  (runs: %s)\n' "floor: curl | igzip -dc | tar -x, 2 at once" "$(printf '%s\n' "${floor[@]}" | median)" "${floor[*]}"
printf '%-44s %s\n' "skopeo copy + umoci unpack" "$peers"
