#!/usr/bin/env bash
# scripts/get-guest.sh
#
# Builds the tiny QEMU guest that the guest tests boot (test/helpers/guest.js), the ordinary
# Debian way, under .cache/guest/:
#   - the kernel of the distribution's own cloud flavour (linux-image-cloud-amd64 / -arm64: the
#     flavour made for VMs, a third of the generic one's size), fetched with `apt-get download`
#     and unpacked with dpkg-deb -x. It is NOT installed: the host's kernel, /boot and dpkg
#     status are left alone;
#   - an initramfs (cpio newc) of busybox-static, the kernel modules virtio-fs needs that the
#     kernel does not build in (virtio_pci, fuse, virtiofs and their dependencies: Debian 12's
#     cloud kernel has them as modules, Debian 13's builds them in; compressed modules, as
#     Debian 13 ships them (xz), are stored plain), and an /init that mounts the virtiofs tag,
#     runs a script from the share and prints its output between markers on the serial console,
#     then powers off.
# QEMU itself (qemu-system-x86 / qemu-system-arm) and busybox-static are apt packages that
# scripts/setup.sh installs; this script only checks for them.
#
# Writes .cache/guest/guest.json (what guest.js reads: the QEMU binary, machine, console, kernel
# and initramfs paths) and prints its path (last line). Idempotent: the kernel is kept per kernel
# package version, the initramfs is rebuilt only when this script, busybox or the kernel changed;
# a re-run with all of that in place downloads nothing (0.6 s on Debian 13, 1.5 s on Debian 12,
# nearly all of it apt-cache reading the package lists).
set -euo pipefail
project=$(cd "$(dirname "$0")/.." && pwd)
cache=$project/.cache/guest
say() { echo "get-guest.sh: $*" >&2; }
die() { say "$*"; exit 1; }

arch=$(dpkg --print-architecture)
case "$arch" in
  amd64) qemu=qemu-system-x86_64 qemu_pkg=qemu-system-x86 machine=q35 console=ttyS0 cpu= ;;
  # virt's default CPU is a 32-bit Cortex-A15; TCG's `max` runs the 64-bit kernel.
  arm64) qemu=qemu-system-aarch64 qemu_pkg=qemu-system-arm machine=virt console=ttyAMA0 cpu=max ;;
  *) die "unsupported architecture $arch (amd64 and arm64 are)" ;;
esac
command -v "$qemu" >/dev/null || die "$qemu is missing: apt-get install $qemu_pkg (scripts/setup.sh does)"
busybox=/bin/busybox
[ -x "$busybox" ] && file -L "$busybox" | grep -q 'statically linked' \
  || die "no static $busybox: apt-get install busybox-static (scripts/setup.sh does)"

# The cloud flavour's metapackage names the current kernel package; asked from apt's lists, so a
# re-run needs no network. (setup.sh runs apt-get update when it installs anything.)
meta=linux-image-cloud-$arch
kpkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/^ *Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$kpkg" ] || die "apt knows no $meta; run apt-get update (Debian's main archive must be in the apt sources)"
kver=${kpkg#linux-image-}
kdir=$cache/$kver
# Kernels of other versions are of no more use.
for d in "$cache"/*/; do [ -d "$d" ] && [ "${d%/}" != "$kdir" ] && rm -rf "$d"; done
mkdir -p "$kdir"

# The package is kept (26 MB): a change of this script rebuilds from it without a download.
deb=$(ls "$kdir"/"$kpkg"_*.deb 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ]; then
  t0=$(date +%s%N)
  # As root, apt drops to _apt for downloads, which cannot write into our directory.
  sandbox=(); [ "$(id -u)" = 0 ] && sandbox=(-o APT::Sandbox::User=root)
  if ! (cd "$kdir" && apt-get download -q "${sandbox[@]}" "$kpkg" >&2); then
    # The lists name a version the archive no longer has: refresh them once (root only).
    [ "$(id -u)" = 0 ] || die "apt-get download $kpkg failed; run apt-get update as root and try again"
    apt-get update -q >&2
    (cd "$kdir" && apt-get download -q "${sandbox[@]}" "$kpkg" >&2)
  fi
  deb=$(ls "$kdir"/"$kpkg"_*.deb | head -n 1)
  say "downloaded $(basename "$deb") ($(( $(stat -c %s "$deb") / 1048576 )) MiB, $(( ($(date +%s%N) - t0) / 1000000 )) ms)"
fi

# What the guest is made of: this script (the /init below), busybox and the kernel package.
stamp="$(basename "$deb") $(cat "$0" "$busybox" | sha256sum | cut -c1-16)"
kernel=$kdir/vmlinuz
initrd=$kdir/initramfs.cpio
if [ ! -s "$kernel" ] || [ ! -s "$initrd" ] || [ "$(cat "$kdir/stamp" 2>/dev/null)" != "$stamp" ]; then
  t1=$(date +%s%N)
  rm -f "$kdir/stamp"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  dpkg-deb -x "$deb" "$tmp/kernel"
  cp "$tmp/kernel/boot/vmlinuz-$kver" "$kernel"
  # Debian 12 ships /lib/modules, Debian 13 (merged /usr) /usr/lib/modules.
  mdir=$(ls -d "$tmp/kernel/lib/modules/$kver" "$tmp/kernel/usr/lib/modules/$kver" 2>/dev/null | head -n 1 || true)
  [ -n "$mdir" ] || die "no modules directory for $kver in $(basename "$deb")"

  root=$tmp/root
  mkdir -p "$root"/{bin,dev,proc,sys,tmp,mnt,etc,lib/modules}
  cp "$busybox" "$root/bin/busybox"
  for applet in $("$busybox" --list); do [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"; done
  # Guest users for the tests: root and one ordinary user, uid/gid 1000 (`su guest -c ...`).
  printf 'root:x:0:0:root:/root:/bin/sh\nguest:x:1000:1000:guest:/tmp:/bin/sh\n' > "$root/etc/passwd"
  printf 'root:x:0:\nguest:x:1000:\n' > "$root/etc/group"

  # The modules to load, in order: each module virtio-fs needs, unless the kernel builds it in,
  # after its dependencies. Debian's package has no modules.dep (depmod makes it at install
  # time), so the dependencies are read from each module's own .modinfo (`depends=a,b`).
  # Debian 13 compresses modules with xz; they are stored plain, as busybox's insmod wants them.
  find "$mdir" -name '*.ko*' > "$tmp/modules"
  loaded=" "
  : > "$root/lib/modules/order"
  add_module() {
    local name=$1 file dep
    case "$loaded" in *" $name "*) return 0 ;; esac
    loaded="$loaded$name "
    grep -qE "/$name\.ko\$" "$mdir/modules.builtin" && return 0
    file=$(awk -v n="$name" '{ f = $0; sub(/.*\//, "", f); sub(/\.ko(\.[a-z]+)?$/, "", f);
                               gsub(/-/, "_", f); if (f == n) { print; exit } }' "$tmp/modules")
    [ -n "$file" ] || die "kernel $kver has $name neither built in nor as a module"
    case "$file" in
      *.ko) cp "$file" "$root/lib/modules/$name.ko" ;;
      *.ko.xz) "$busybox" xzcat "$file" > "$root/lib/modules/$name.ko" ;;
      *.ko.gz) "$busybox" zcat "$file" > "$root/lib/modules/$name.ko" ;;
      *.ko.zst) zstd -q -d -c "$file" > "$root/lib/modules/$name.ko" ;;
      *) die "$file: unknown module compression" ;;
    esac
    for dep in $(tr '\0' '\n' < "$root/lib/modules/$name.ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
      add_module "${dep//-/_}"
    done
    echo "$name.ko" >> "$root/lib/modules/order"
  }
  for m in virtio_pci fuse virtiofs; do add_module "$m"; done

  cat > "$root/init" <<'INIT'
#!/bin/sh
# The guest's whole life: mount the share, run its script, report, power off.
# Kernel command line: vfs.tag=TAG (the virtiofs tag), vfs.script=FILE (relative to the share).
# The archive has no /dev/console (making one needs root), so the kernel gave us no stdio: devtmpfs first.
/bin/mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
export PATH=/bin HOME=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
say() { echo "@@GUEST $*"; }
finish() {
  cd /
  sync
  umount /mnt 2>/dev/null
  say "END $1"
  poweroff -f
}
for m in $(cat /lib/modules/order); do
  insmod "/lib/modules/$m" || { say "ERROR insmod $m failed"; finish 125; }
done
tag=; script=
for w in $(cat /proc/cmdline); do
  case "$w" in vfs.tag=*) tag=${w#vfs.tag=} ;; vfs.script=*) script=${w#vfs.script=} ;; esac
done
say "BOOTED $(cut -d' ' -f1 /proc/uptime)"
mount -t virtiofs "$tag" /mnt || { say "ERROR mount -t virtiofs $tag /mnt failed"; finish 126; }
[ -f "/mnt/$script" ] || { say "ERROR no script /mnt/$script in the share"; finish 127; }
# The script's output is collected first and printed in one piece, after the markers.
cd /mnt
sh "/mnt/$script" > /tmp/out 2>&1
status=$?
say BEGIN
cat /tmp/out
finish "$status"
INIT
  chmod 755 "$root/init"
  # Owned by root in the archive whoever builds it; sorted, so the same inputs give the same bytes.
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | "$busybox" cpio -o -H newc -R 0:0 2>/dev/null) > "$initrd.tmp"
  mv "$initrd.tmp" "$initrd"
  mods=$(tr '\n' ' ' < "$root/lib/modules/order")
  rm -rf "$tmp"; trap - EXIT
  echo "$stamp" > "$kdir/stamp"
  say "built $kernel and $initrd ($(( $(stat -c %s "$initrd") / 1024 )) KiB; modules: ${mods:-none, all built in})" \
    "in $(( ($(date +%s%N) - t1) / 1000000 )) ms"
fi

cat > "$cache/guest.json.tmp" <<JSON
{
  "arch": "$arch",
  "qemu": "$(command -v "$qemu")",
  "machine": "$machine",
  "console": "$console",
  "cpu": "$cpu",
  "kernelVersion": "$kver",
  "kernel": "$kver/vmlinuz",
  "initrd": "$kver/initramfs.cpio"
}
JSON
mv "$cache/guest.json.tmp" "$cache/guest.json"
say "ready: $qemu ($(dpkg-query -W -f='${Version}' "$qemu_pkg")), kernel $kver, initramfs $(( $(stat -c %s "$initrd") / 1024 )) KiB"
echo "$cache/guest.json"
