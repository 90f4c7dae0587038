#!/bin/bash
# run-btrfs-test.sh — the dd copy engine on a real btrfs (reflink) and on
# small filesystems (ENOSPC). Needs root (loop mounts); installs btrfs-progs
# when missing. Everything it makes lives under one mktemp dir and is
# unmounted and removed on exit, whatever happens.
#
#   run-btrfs-test.sh BUILD_DIR [--bench]
# BUILD_DIR holds test_copy, test_plugin and dd.so (run-tests.sh makes them).
# --bench: also time a reflink and a plain copy of a dense 1 GiB file.
set -euo pipefail

build=${1:?usage: $0 BUILD_DIR [--bench]}
test_copy=$build/test_copy
bench=${2:-}
[ "$(id -u)" = 0 ] || { echo "FAIL: needs root for loop mounts" >&2; exit 1; }
if ! command -v mkfs.btrfs >/dev/null; then
  apt-get install -y btrfs-progs >/dev/null
fi

work=$(mktemp -d /tmp/vmsnap-dd-btrfs.XXXXXX)
mounts=()
cleanup() {
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# mount_image NAME SIZE MKFS... : a loop-mounted filesystem in $work/NAME
mount_image() {
  local name=$1 size=$2; shift 2
  truncate -s "$size" "$work/$name.img"
  "$@" "$work/$name.img" >/dev/null 2>&1
  mkdir "$work/$name"
  mount -o loop "$work/$name.img" "$work/$name"
  mounts+=("$work/$name")
}

big=300M
[ "$bench" = --bench ] && big=3G
mount_image btrfs "$big" mkfs.btrfs -q -f
mount_image small-btrfs 16M mkfs.btrfs -q -f --mixed
mount_image small-ext4 16M mkfs.ext4 -q -F

"$test_copy" "$work/btrfs" --reflink yes --nospc "$work/small-btrfs"
"$test_copy" "$work/btrfs" --reflink yes --nospc "$work/small-ext4"
mkdir "$work/btrfs/plugin"
"$build/test_plugin" "$build/dd.so" "$work/btrfs/plugin" "" "$work/small-btrfs"
if [ "$bench" = --bench ]; then
  "$test_copy" "$work/btrfs" --bench 1024
fi
echo "btrfs tests passed"
