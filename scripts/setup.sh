#!/usr/bin/env bash
# Installs what virtiofs-daemon needs on Debian 12 or 13, the ordinary way (run as root):
# a C/C++ toolchain and python3 for node-gyp, and the distribution's virtiofsd
# (Debian 12: the legacy C daemon in qemu-system-common; Debian 13: the Rust one, package virtiofsd).
# Node.js >= 20 must be there already on Debian 12 (its own nodejs is 18); Debian 13's is installed.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
case "$codename" in
  bookworm) daemon_pkg=qemu-system-common ;;
  trixie)   daemon_pkg=virtiofsd ;;
  *) echo "setup.sh: Debian 12 (bookworm) or 13 (trixie) expected, found '${codename:-unknown}'" >&2; exit 1 ;;
esac

pkgs=(build-essential python3 "$daemon_pkg")
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  if [ "$codename" = trixie ]; then pkgs+=(nodejs npm); else
    echo "setup.sh: Node.js >= 20 is needed (found ${node_major}); Debian 12's own is 18." >&2
    echo "  Install Node.js 20 or later (e.g. from nodejs.org or NodeSource), then run this again." >&2
    exit 1
  fi
fi

missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "setup.sh: ready (node $(node --version), $daemon_pkg installed)" >&2
