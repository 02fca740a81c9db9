#!/usr/bin/env bash
# scripts/get-node.sh ARCH MAJOR   (ARCH: x64 | arm64)
#
# Puts Node.js MAJOR's official Linux binary for ARCH at .cache/node/linux-ARCH-MAJOR/bin/node and
# prints that path (last line). The binaries come from the npm registry's node-linux-ARCH package
# (the nodejs.org build, repackaged), through npm itself: no other download. Used to run the
# tests under every current Node (.ci/run) and to load the arm64 prebuild under qemu-user.
# Idempotent: a binary already there is only printed.
set -euo pipefail
arch=${1:-} major=${2:-}
case "$arch" in x64|arm64) ;; *) echo "usage: $0 x64|arm64 MAJOR" >&2; exit 2 ;; esac
[[ "$major" =~ ^[0-9]+$ ]] || { echo "usage: $0 x64|arm64 MAJOR" >&2; exit 2; }
project=$(cd "$(dirname "$0")/.." && pwd)
dir=$project/.cache/node/linux-$arch-$major
if [ -x "$dir/bin/node" ]; then echo "$dir/bin/node"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tgz=$(cd "$tmp" && npm pack --silent "node-linux-$arch@$major" | tail -n 1)
mkdir -p "$dir/bin"
tar -xzf "$tmp/$tgz" -C "$tmp" package/bin/node
mv "$tmp/package/bin/node" "$dir/bin/node"
echo "$dir/bin/node"
