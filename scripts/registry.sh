# Sourced by scripts/demo.sh and bench/pull_bench.sh: a docker-registry on a free loopback port
# in a temporary work directory, both removed when the sourcing script exits.
#   start_registry TMPDIR_TEMPLATE  → sets $work, $port, $registry_pid
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
