# Sourced by bench/pull_bench.sh: the other pullers, each run cold on private directories.
#
# For each peer NAME there is peer_NAME_installed (true if its binaries are on this machine)
# and peer_NAME_pull DIR REF, which starts what the peer needs (daemons, config files), drops
# the caches, pulls REF, timed (it sets $secs through `timed`), and stops what it started, by
# PID. DIR (on the filesystem being measured) holds the peer's data; its configs, sockets and
# exec state go under $sock_base (short paths: a unix socket's name is limited to 108 bytes).
# Nothing here reads or writes the system's own docker, containerd or podman state, and the
# only network used is the loopback registry.

daemon_pids=() # the daemons running now, in the order they were started

# Stops the daemons, last started first: SIGTERM, then SIGKILL after 30 s; waits for each.
stop_daemons() {
  local i pid
  for ((i = ${#daemon_pids[@]} - 1; i >= 0; i--)); do
    pid=${daemon_pids[i]}
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  daemon_pids=()
}

# wait_for SECONDS CMD...: runs CMD every 0.1 s until it succeeds; fails after SECONDS, or
# as soon as the daemon started last has exited.
wait_for() {
  local tries=$(($1 * 10))
  shift
  for _ in $(seq 1 "$tries"); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "${daemon_pids[-1]}" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Unmounts whatever is still mounted under DIR, deepest first.
umount_under() {
  local m
  for m in $(awk -v d="$1/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
}

# start_containerd DIR RUN: a containerd whose root (content, snapshots) is under DIR and whose
# config, state and sockets (RUN/sock, RUN/sock.ttrpc) are under RUN. No CRI plugin.
start_containerd() {
  local dir=$1 run=$2
  cat >"$run/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$run/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$run/sock"
[ttrpc]
  address = "$run/sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
TOML
  containerd --config "$run/config.toml" >"$run/log" 2>&1 &
  daemon_pids+=($!)
  wait_for 30 ctr -a "$run/sock" version && return 0
  echo "containerd did not start; its log:" >&2 && tail -20 "$run/log" >&2
  return 1
}

# --- containerd: its own daemon, `ctr images pull`, which fetches and unpacks into the
# overlayfs snapshotter.
peer_ctr_installed() { command -v containerd >/dev/null && command -v ctr >/dev/null; }
peer_ctr_pull() {
  local dir=$1 ref=$2 run rc=0
  run=$(mktemp -d "$sock_base/ctr.XXXXXX")
  if start_containerd "$dir" "$run"; then
    drop_caches
    timed ctr -a "$run/sock" -n bench images pull --plain-http --snapshotter overlayfs "$ref" \
      >/dev/null || rc=$?
  else
    rc=1
  fi
  stop_daemons
  umount_under "$dir"
  rm -rf "$run"
  return $rc
}

# --- podman: rootful, its own --root/--runroot/--tmpdir, overlay driver, file locks (the
# default SHM lock, /dev/shm/libpod_lock, is shared by every podman of the machine), and
# private registries.conf (the loopback registry marked insecure), storage.conf and
# containers.conf.
peer_podman_installed() { command -v podman >/dev/null; }
peer_podman_pull() {
  local dir=$1 ref=$2 run rc=0
  run=$(mktemp -d "$sock_base/podman.XXXXXX")
  printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "${ref%%/*}" >"$run/registries.conf"
  printf '[storage]\ndriver = "overlay"\nrunroot = "%s"\ngraphroot = "%s"\n' \
    "$run/runroot" "$dir/root" >"$run/storage.conf"
  printf '[engine]\nlock_type = "file"\n' >"$run/containers.conf"
  drop_caches
  CONTAINERS_REGISTRIES_CONF="$run/registries.conf" CONTAINERS_STORAGE_CONF="$run/storage.conf" \
    CONTAINERS_CONF="$run/containers.conf" \
    timed podman --root "$dir/root" --runroot "$run/runroot" --tmpdir "$run/tmp" \
    --storage-driver overlay --cgroup-manager cgroupfs --events-backend none \
    pull -q "$ref" >/dev/null || rc=$?
  umount_under "$dir"
  umount_under "$run"
  rm -rf "$run"
  return $rc
}

# --- docker: its own dockerd (private data-root, exec-root, socket, pidfile, config file and
# key file; no iptables, no bridge; overlay2) on its own containerd (as above), `docker pull`.
peer_docker_installed() { command -v dockerd >/dev/null && command -v docker >/dev/null; }
peer_docker_pull() {
  local dir=$1 ref=$2 run rc=0 docker=docker had_run_docker=0
  [ -e /run/docker ] && had_run_docker=1
  [ -x /usr/bin/docker ] && docker=/usr/bin/docker # the CLI packaged with this dockerd
  run=$(mktemp -d "$sock_base/docker.XXXXXX")
  # The key file's path has no flag, only a config key (else it is /etc/docker/key.json).
  printf '{"deprecated-key-path": "%s"}\n' "$run/key.json" >"$run/daemon.json"
  mkdir -p "$run/containerd" "$dir/containerd"
  start_containerd "$dir/containerd" "$run/containerd" || rc=1
  if [ $rc -eq 0 ]; then
    dockerd --config-file "$run/daemon.json" --data-root "$dir/root" --exec-root "$run/exec" \
      -H "unix://$run/sock" --pidfile "$run/pid" --containerd "$run/containerd/sock" \
      --iptables=false --ip6tables=false --bridge=none \
      --storage-driver overlay2 --insecure-registry "${ref%%/*}" >"$run/log" 2>&1 &
    daemon_pids+=($!)
    if ! wait_for 60 "$docker" -H "unix://$run/sock" version; then
      echo "dockerd did not start; its log:" >&2 && tail -20 "$run/log" >&2
      rc=1
    fi
  fi
  if [ $rc -eq 0 ]; then
    drop_caches
    timed "$docker" -H "unix://$run/sock" pull -q "$ref" >/dev/null || rc=$?
  fi
  stop_daemons
  umount_under "$dir"
  umount_under "$run"
  rm -rf "$run"
  # dockerd always makes /run/docker/plugins (where plugins are looked for): remove it if it
  # was not there before and is still empty.
  [ $had_run_docker = 1 ] || rmdir /run/docker/plugins /run/docker 2>/dev/null || true
  return $rc
}

# --- skopeo copy (to an OCI layout under DIR) + umoci unpack (to a flattened rootfs).
peer_skopeo_installed() { command -v skopeo >/dev/null && command -v umoci >/dev/null; }
peer_skopeo_pull() {
  local dir=$1 ref=$2
  echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$dir/policy.json"
  drop_caches
  timed sh -c 'skopeo --policy "$1/policy.json" copy -q --src-tls-verify=false "docker://$2" \
    "oci:$1/oci:app" && umoci unpack --image "$1/oci:app" "$1/bundle" >/dev/null' sh "$dir" "$ref"
}
