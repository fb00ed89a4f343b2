#!/usr/bin/env bash
# Installs the built hoist into a temporary prefix, then builds tests/consumer against it with
# find_package(hoist) and with pkg-config, and runs both programs.
set -euo pipefail
build_dir=$1
src_dir=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
# hoist(1) is installed, with a section per command.
grep -q '^\.SS hoist pull' "$work/prefix/share/man/man1/hoist.1"
cmake -S "$src_dir" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
test "$("$work/cmake-build/consumer")" = "docker.io/library/alpine:3.20"
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig:$work/prefix/lib/x86_64-linux-gnu/pkgconfig"
# shellcheck disable=SC2046
g++ -std=c++20 "$src_dir/main.cc" -o "$work/pc-consumer" $(pkg-config --cflags --libs hoist)
test "$("$work/pc-consumer")" = "docker.io/library/alpine:3.20"
echo "consumer: find_package and pkg-config both build and run"
