#!/usr/bin/env bash
# The floor for one layer: download, inflate with isa-l, untar; no hashing, no verification,
# no sync. Usage: bench/floor_layer.sh BLOB_URL DEST_DIR (created if missing).
set -euo pipefail
mkdir -p "$2"
curl -fsS "$1" | igzip -dc | tar -x -C "$2"
