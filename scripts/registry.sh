# Sourced by scripts/demo.sh and the bench scripts: a docker-registry on a free loopback port
# in a temporary work directory, both removed when the sourcing script exits.
#   start_registry TMPDIR_TEMPLATE  → sets $work, $port, $registry_pid
#   push_layer_image LAYOUT LAYER MEDIA_TYPE DIFF_ID REPO:TAG  → a one-layer image, pushed
# With REGISTRY_ACCESSLOG=1 the registry logs every request to $work/registry.log.
registry_pid=""
work=""
stop_registry() {
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  if [ -n "$work" ]; then rm -rf "$work"; fi
}
trap stop_registry EXIT

start_registry() {
  work=$(mktemp -d "$1")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$work/registry.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: $([ "${REGISTRY_ACCESSLOG:-0}" = 1 ] && echo false || echo true)}}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port, secret: hoist-local}
YAML
  docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the registry did not start; its log:" >&2
  cat "$work/registry.log" >&2
  return 1
}

# Moves FILE into the OCI layout $1's blobs as its digest; prints "hex size".
layout_blob() {
  local hex size
  hex=$(sha256sum "$2" | cut -d' ' -f1)
  size=$(stat -c %s "$2")
  mv "$2" "$1/blobs/sha256/$hex"
  echo "$hex $size"
}

# An OCI layout LAYOUT (made, and left for the caller) holding a one-layer image: the file
# LAYER (moved into it) of MEDIA_TYPE, a config naming DIFF_ID (empty: LAYER's own digest, for
# an uncompressed tar); pushed with skopeo to the registry as REPO:TAG (skopeo compresses an
# uncompressed layer with gzip as it pushes, and keeps a compressed one as it is).
push_layer_image() {
  local layout=$1 layer=$2 media_type=$3 diff_id=$4 ref=$5 lhex lsize chex csize mhex msize
  mkdir -p "$layout/blobs/sha256"
  read -r lhex lsize < <(layout_blob "$layout" "$layer")
  [ -n "$diff_id" ] || diff_id=$lhex
  printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$diff_id" >"$layout/config.tmp"
  read -r chex csize < <(layout_blob "$layout" "$layout/config.tmp")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"%s","digest":"sha256:%s","size":%s}]}' \
    "$chex" "$csize" "$media_type" "$lhex" "$lsize" >"$layout/manifest.tmp"
  read -r mhex msize < <(layout_blob "$layout" "$layout/manifest.tmp")
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s}]}' \
    "$mhex" "$msize" >"$layout/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  skopeo copy -q --dest-tls-verify=false "oci:$layout" "docker://127.0.0.1:$port/$ref"
}
