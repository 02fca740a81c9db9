#!/usr/bin/env bash
# Installs what virtiofs-daemon's development and tests need on Debian 12 or 13, the ordinary way
# (run as root, from anywhere):
#   - Node.js >= 20 and npm (Debian 13's own nodejs; on Debian 12, whose nodejs is 18, bring your own),
#   - build-essential and python3, for node-gyp and the C test helpers,
#   - both virtiofsd dialects: the distribution's with apt-get (Debian 12: the legacy C daemon in
#     qemu-system-common; Debian 13: the Rust one, package virtiofsd), and the other release's
#     package unpacked into .cache/virtiofsd-<dialect>/ (scripts/get-virtiofsd.sh), where the
#     tests find it without any environment variable,
#   - qemu-user-static and Debian's arm64 libc/libstdc++ (cross packages), plus Node's official
#     arm64 binary from the npm registry (.cache/node/), so the tests load the arm64 prebuild,
#   - a QEMU guest for the tests that boot one (test/guest.test.js): QEMU for this machine's
#     architecture (qemu-system-x86 / qemu-system-arm) and busybox-static, with apt-get; Debian's
#     cloud kernel, downloaded but not installed, and a tiny initramfs built from them under
#     .cache/guest/ (scripts/get-guest.sh),
#   - uidmap (newuidmap/newgidmap, setuid): the Rust virtiofsd run by an unprivileged user maps
#     guest ids beyond the user's own through them (the idmap option's 'auto' and ranges;
#     test/desktop.test.js, test/guest-idmap.test.js).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
cd "$(dirname "$0")/.."
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
case "$codename" in
  bookworm) own=legacy other=rust daemon_pkg=qemu-system-common ;;
  trixie)   own=rust other=legacy daemon_pkg=virtiofsd ;;
  *) echo "setup.sh: Debian 12 (bookworm) or 13 (trixie) expected, found '${codename:-unknown}'" >&2; exit 1 ;;
esac

case "$(dpkg --print-architecture)" in arm64) qemu_system=qemu-system-arm ;; *) qemu_system=qemu-system-x86 ;; esac
pkgs=(build-essential python3 file "$daemon_pkg" qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross
  "$qemu_system" busybox-static uidmap)
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  if [ "$codename" = trixie ]; then pkgs+=(nodejs); else
    echo "setup.sh: Node.js >= 20 is needed (found ${node_major}); Debian 12's own is 18." >&2
    echo "  Install Node.js 20 or later (e.g. from nodejs.org or NodeSource), then run this again." >&2
    exit 1
  fi
fi
# Debian's nodejs comes without npm; Node's own builds bring theirs.
if ! command -v npm >/dev/null 2>&1; then
  if [ "$codename" = trixie ]; then pkgs+=(npm); else
    echo "setup.sh: npm is missing; Debian 12's npm package needs its nodejs 18. Install a Node.js build that" >&2
    echo "  brings npm (nodejs.org, NodeSource), then run this again." >&2
    exit 1
  fi
fi

missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

other_path=$(scripts/get-virtiofsd.sh "$other" | tail -n 1)
node_major=$(node -p 'process.versions.node.split(".")[0]')
arm64_node=$(scripts/get-node.sh arm64 "$node_major" | tail -n 1)
guest=$(scripts/get-guest.sh | tail -n 1)
echo "setup.sh: ready (node $(node --version), npm $(npm --version); virtiofsd $own from $daemon_pkg," \
  "$other at $other_path; arm64 node at $arm64_node; QEMU guest in $guest)" >&2
