#!/usr/bin/env bash
# Installs what building and testing vmsnap needs on Debian 12 (as root,
# or through sudo). Quiet when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libjansson-dev uuid-dev libcmocka-dev   # JSON, UUIDs, unit tests
  libbtrfsutil-dev                        # the btrfs backend (subvolume snapshots)
  libdevmapper-dev lvm2                   # the LVM backend (status in-process, changes through lvm)
  scdoc                                   # the snapctl(1) man page
  qemu-utils btrfs-progs xfsprogs         # real tools the tests and benchmarks use
  qemu-system-x86                         # real QEMU for the QMP and live-snapshot tests
  debootstrap                             # the Debian guest of tests/vm (LVM, Xen)
  util-linux e2fsprogs coreutils
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
