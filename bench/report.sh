# Sourced by bench/pull_bench.sh after the rounds: prints the table from $results (lines
# "place measure round seconds peak-RSS-KiB extra"). bench/README.md explains each row.

# col PLACE MEASURE FIELD: that field of every run, in round order ("-" lines left out).
col() { awk -v p="$1" -v m="$2" -v f="$3" '$1 == p && $2 == m && $f != "-" { print $f }' "$results"; }
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR) printf "%.3f\n", (a[int((NR + 1) / 2)] + a[int(NR / 2) + 1]) / 2 }'; }
med() { col "$1" "$2" 4 | median; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }        # calc EXPR [DECIMALS]
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; } # le A B: A <= B
ok_if() { if "$@"; then echo met; else echo "NOT met"; fi; } # ok_if CMD...: met if CMD succeeds
within() { le "$1" "$2" && le "$2" "$3"; }                    # within LOW X HIGH

fmt='%-6s %-40s %9s  %-22s %7s  %6s  %-24s %-14s %s\n'
row() { # where measure median rounds rss ratio ratio-of target verdict
  # shellcheck disable=SC2059
  printf "$fmt" "$@"
}
rss_mib() { # RSS column: the largest peak RSS of the runs, MiB
  local k
  k=$(col "$1" "$2" 5 | sort -n | tail -1)
  [ -z "$k" ] || calc "$k / 1024"
}

# measure_row PLACE MEASURE LABEL RATIO RATIO-OF TARGET VERDICT
measure_row() {
  local m runs
  m=$(med "$1" "$2")
  runs=$(col "$1" "$2" 4 | tr '\n' ' ')
  [ -n "$m" ] || m="failed"
  row "$1" "$3" "$m" "${runs% }" "$(rss_mib "$1" "$2")" "$4" "$5" "$6" "$7"
}

echo
echo "hoist pull benchmark: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $rounds round(s), took $((elapsed / 60)) min $((elapsed % 60)) s"
echo "image 1x: $layer_count layers, $files entries, ${sizes[1x]} bytes compressed (gzip); registry on $disk_root"
echo "rootfs command: $rootfs_cmd"
echo
row where measure "median s" "rounds (s)" "RSS MiB" ratio "ratio is" target met
for place in $places; do
  cold=$(med "$place" hoist_cold)
  rootfs=$(med "$place" hoist_rootfs)
  seq=$(med "$place" floor_seq)
  par2=$(med "$place" floor_par2)

  r="" v="-"
  if [ -n "$cold" ] && [ -n "$par2" ]; then r=$(calc "$cold / $par2") && v=$(ok_if le "$r" 1.10); fi
  measure_row "$place" hoist_cold "hoist pull, cold" "$r" "of floor 2 at a time" "<= 1.10" "$v"

  r="" v="-"
  if [ -n "$rootfs" ] && [ -n "$seq" ]; then r=$(calc "$rootfs / $seq") && v=$(ok_if le "$r" 1.00); fi
  measure_row "$place" hoist_rootfs "hoist pull -> flattened rootfs" "$r" "of floor in sequence" "<= 1.00" "$v"

  repull=$(med "$place" hoist_repull)
  requests=$(col "$place" hoist_repull 6 | sort -n | tail -1)
  v="-"
  if [ -n "$repull" ]; then v=$(ok_if le "$repull" 0.050) && [ "$requests" = 1 ] || v="NOT met"; fi
  measure_row "$place" hoist_repull "hoist pull, unchanged (re-pull)" "$requests" "manifest requests (max)" "<= 0.050 s, 1" "$v"

  top=$(med "$place" hoist_top) r=""
  if [ -n "$top" ] && [ -n "$cold" ]; then r=$(calc "$top / $cold"); fi
  measure_row "$place" hoist_top "hoist pull, only the top layer changed" "$r" "of the cold pull" "-" "-"

  measure_row "$place" floor_seq "floor: curl|igzip|tar, layer after layer" "" "" "-" "-"
  measure_row "$place" floor_par2 "floor: the same, 2 at a time, own dirs" "" "" "-" "-"

  for peer in $peer_names; do
    case $peer in
      ctr) label="ctr images pull (containerd, overlayfs)" ;;
      podman) label="podman pull (overlay)" ;;
      docker) label="docker pull (dockerd, overlay2)" ;;
      skopeo) label="skopeo copy + umoci unpack" ;;
      *) label=$peer ;;
    esac
    if ! peer_"${peer}"_installed; then
      row "$place" "$label" "-" "not installed" "" "" "" "" ""
      continue
    fi
    # A peer that writes a rootfs is compared with hoist's rootfs; the others with the pull.
    ours=$cold target=1/3 of="hoist pull / this"
    if [ "$peer" = skopeo ]; then ours=$rootfs target=1/4 of="hoist -> rootfs / this"; fi
    theirs=$(med "$place" "peer_$peer") r="" v="-"
    if [ -n "$theirs" ] && [ -n "$ours" ]; then r=$(calc "$ours / $theirs" 3) && v=$(ok_if le "$r" "$(calc "$target" 4)"); fi
    measure_row "$place" "peer_$peer" "$label" "$r" "$of" "<= $target" "$v"
  done

  for s in $scales; do
    [ "$s" != 1 ] || continue
    t=$(med "$place" "hoist_cold_${s}x") r="" v="-"
    if [ -n "$t" ] && [ -n "$cold" ]; then
      r=$(calc "($t / ${sizes[${s}x]}) / ($cold / ${sizes[1x]})")
      v=$(ok_if within 0.90 "$r" 1.10)
    fi
    measure_row "$place" "hoist_cold_${s}x" "hoist pull, cold, image ${s}x" "$r" "s/byte of 1x" "0.90 - 1.10" "$v"
  done

  peak=$(awk -v p="$place" '$1 == p && $2 ~ /^hoist/ && $5 != "-" { print $5 }' "$results" | sort -n | tail -1)
  v="-" mib=""
  if [ -n "$peak" ]; then mib=$(calc "$peak / 1024") && v=$(ok_if le "$mib" 64); fi
  row "$place" "peak RSS of every hoist command" "" "" "$mib" "" "" "<= 64 MiB" "$v"
  n=$(grep -c "^$place failed:" "$results" || true)
  [ "$n" = 0 ] || echo "$place: $n run(s) failed: $(grep "^$place failed:" "$results" | cut -d' ' -f2 | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
done
