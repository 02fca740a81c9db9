#!/usr/bin/env bash
# scripts/get-virtiofsd.sh legacy|rust
#
# Makes the virtiofsd dialect that this Debian release does not ship runnable, the ordinary way:
# the other release's Debian package and its dependency closure (its own libc included) are
# downloaded with apt-get from the archive this machine's apt sources name, and unpacked with
# dpkg -x into the project's cache, .cache/virtiofsd-<dialect>/. A wrapper there,
# .cache/virtiofsd-<dialect>/virtiofsd, runs the binary through that tree's own dynamic loader
# and execs, so the pid and every inherited fd (fd 3: the vhost-user socket) pass through.
#   legacy  the C virtiofsd of QEMU <= 7.2: Debian 12's qemu-system-common
#   rust    the Rust virtiofsd:             Debian 13's virtiofsd
# The system's libc, dpkg status and apt cache are left as they are. Prints the wrapper's path
# (last line). Idempotent: once the wrapper runs, a second call only prints it.
set -euo pipefail
dialect=${1:-}
case "$dialect" in
  legacy) suite=bookworm pkg=qemu-system-common bin=usr/lib/qemu/virtiofsd ;;
  rust)   suite=trixie   pkg=virtiofsd          bin=usr/libexec/virtiofsd ;;
  *) echo "usage: $0 legacy|rust" >&2; exit 2 ;;
esac
project=$(cd "$(dirname "$0")/.." && pwd)
tree=$project/.cache/virtiofsd-$dialect
wrapper=$tree/virtiofsd
if [ -x "$wrapper" ] && "$wrapper" --version >/dev/null 2>&1; then echo "$wrapper"; exit 0; fi

# The archive's address, from this machine's own apt sources (deb822 or one-line format).
uri=$( { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources || true
         grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list || true; } \
       | awk '{print $2}' | grep -v security | head -n 1 || true)
[ -n "$uri" ] || { echo "get-virtiofsd.sh: no Debian archive in /etc/apt sources" >&2; exit 1; }
arch=$(dpkg --print-architecture)
case "$arch" in
  amd64) ld=ld-linux-x86-64.so.2 triplet=x86_64-linux-gnu ;;
  arm64) ld=ld-linux-aarch64.so.1 triplet=aarch64-linux-gnu ;;
  *) echo "get-virtiofsd.sh: unsupported architecture $arch" >&2; exit 1 ;;
esac

rm -rf "$tree"
apt_dir=$tree.apt
mkdir -p "$tree" "$apt_dir"/{etc/parts.d,lists/partial,cache/archives/partial}
echo "deb $uri $suite main" > "$apt_dir/etc/sources.list"
: > "$apt_dir/status"   # an empty dpkg status: apt downloads the whole dependency closure
apt_get=(apt-get -q
  -o Dir::Etc::sourcelist="$apt_dir/etc/sources.list" -o Dir::Etc::sourceparts="$apt_dir/etc/parts.d"
  -o Dir::Etc::preferences="$apt_dir/etc/none" -o Dir::Etc::preferencesparts="$apt_dir/etc/parts.d"
  -o Dir::State="$apt_dir" -o Dir::State::Lists="$apt_dir/lists" -o Dir::State::status="$apt_dir/status"
  -o Dir::Cache="$apt_dir/cache"   # not the host's package cache
  -o APT::Architecture="$arch" -o APT::Architectures::="$arch" -o APT::Install-Recommends=false)
"${apt_get[@]}" update >&2
"${apt_get[@]}" install -y --download-only "$pkg" >&2
for deb in "$apt_dir"/cache/archives/*.deb; do dpkg -x "$deb" "$tree"; done
rm -rf "$apt_dir"

# The tree's own loader. Its lib64 link is often absolute, which would lead to the HOST's loader
# (wrong for the other release's libc): follow links inside the tree only.
ldso=
for c in usr/lib/$triplet/$ld lib/$triplet/$ld usr/lib64/$ld lib64/$ld; do
  p=$tree/$c
  for _ in 1 2 3 4 5 6 7 8; do
    [ -L "$p" ] || break
    t=$(readlink "$p"); case "$t" in /*) p=$tree$t ;; *) p=$(dirname "$p")/$t ;; esac
  done
  if [ -f "$p" ] && [ ! -L "$p" ]; then ldso=$p; break; fi
done
[ -n "$ldso" ] && [ -x "$tree/$bin" ] || { echo "get-virtiofsd.sh: no loader or binary under $tree" >&2; exit 1; }
cat > "$wrapper" <<WRAPPER
#!/bin/sh
# $pkg's virtiofsd from Debian $suite, run with its own libraries; exec keeps the pid and every fd.
exec "$ldso" --library-path "$tree/usr/lib/$triplet:$tree/lib/$triplet" "$tree/$bin" "\$@"
WRAPPER
chmod +x "$wrapper"
"$wrapper" --version >&2
echo "$wrapper"
