#!/usr/bin/env bash
# What a zstd layer's window costs: the peak RSS of `hoist pull` for one zstd layer (a tar of
# BENCH_ZSTD_DIR, by default /usr/lib/x86_64-linux-gnu, about 1 GB) compressed with windows of
# 2 MiB (zstd -3), 8 MiB (zstd -19's window), 16 MiB, 32 MiB (hoist's default limit) and 128 MiB
# (`zstd --long`), pulled with the default limit and with --max-zstd-window 128MiB.
# Usage: sudo bench/zstd_window.sh   (after bench/install-deps.sh; builds hoist into build/)
set -euo pipefail
cd "$(dirname "$0")/.."
src=${BENCH_ZSTD_DIR:-/usr/lib/x86_64-linux-gnu}
if [ "${BENCH_BUILD:-1}" = 1 ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHOIST_WERROR=ON >/dev/null
  cmake --build build -j "$(nproc)" --target hoist_cli >/dev/null
fi
hoist_bin=$PWD/build/tools/hoist/hoist
. scripts/registry.sh
start_registry "${BENCH_DISK_DIR:-/var/tmp}/hoist-zstd-bench.XXXXXX"

# One OCI layout per window, holding a one-layer image tagged w<log>, pushed with skopeo.
tar -C "$(dirname "$src")" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
  -cf "$work/layer.tar" "$(basename "$src")"
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
for log in 21 23 24 25 27; do
  zstd -q -T0 -3 --long=$log -f "$work/layer.tar" -o "$work/layer.zst"
  push_layer_image "$work/layout$log" "$work/layer.zst" application/vnd.oci.image.layer.v1.tar+zstd \
    "$diff_id" "zstd:w$log"
done
rm -f "$work/layer.tar"

printf '%-8s %-12s %-26s %8s %9s\n' window layer-bytes limit seconds 'RSS MiB'
for log in 21 23 24 25 27; do
  for limit in default 128MiB; do
    store=$(mktemp -d "$work/store.XXXXXX")
    flags=()
    [ "$limit" = default ] || flags=(--max-zstd-window "$limit")
    out=$work/time.out
    if /usr/bin/time -f '%e %M' -o "$out" "$hoist_bin" --store "$store" pull -q "${flags[@]}" \
      "127.0.0.1:$port/zstd:w$log" >/dev/null 2>"$work/err"; then
      verdict=$limit
    else
      verdict="$limit: refused"
    fi
    read -r secs kib < <(tail -1 "$out")
    printf '%-8s %-12s %-26s %8s %9d\n' "2^$log" "$(du -sb "$work/layout$log/blobs" | cut -f1)" \
      "$verdict" "$secs" $((kib / 1024))
    rm -rf "$store"
  done
done
