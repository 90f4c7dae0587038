#!/bin/bash
# run-tests.sh — builds the dd plugin with the CI flags (or takes cmake's
# build: $DD_TEST_BUILD holds test_copy and test_plugin, $DD_SO names dd.so),
# checks it exports one symbol, then runs the copy engine tests on the local
# filesystem, on a loop block device, on a full tmpfs and on btrfs, and the
# plugin ops through a stand-in host. Needs root (loop devices, mounts).
#
#   tests/dd/run-tests.sh [--bench]      (from anywhere)
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
bench=${1:-}
[ "$(id -u)" = 0 ] || { echo "FAIL: needs root (loop devices, mounts)" >&2; exit 1; }
work=$(mktemp -d /tmp/vmsnap-dd-test.XXXXXX)
loopdev=
cleanup() {
  [ -n "$loopdev" ] && losetup -d "$loopdev" 2>/dev/null || true
  mountpoint -q "$work/tmpfs" 2>/dev/null && umount "$work/tmpfs" || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

if [ -n "${DD_TEST_BUILD:-}" ]; then
  # Under ctest: the binaries cmake built (maybe with sanitizers).
  ln -s "$DD_TEST_BUILD/test_copy" "$DD_TEST_BUILD/test_plugin" "$work/"
  ln -s "${DD_SO:?DD_SO must name the built dd.so}" "$work/dd.so"
else
  cflags=(-std=gnu11 -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter)
  gcc "${cflags[@]}" -fPIC -shared -fvisibility=hidden -I"$src/include" -I"$src/plugins/common" \
      "$src"/plugins/dd/*.c "$src"/plugins/common/*.c -o "$work/dd.so"
  gcc "${cflags[@]}" -O2 -g -I"$src/plugins/dd" -I"$src/plugins/common" "$src/tests/dd/test_copy.c" \
      "$src/plugins/dd/copy.c" "$src/plugins/dd/newfile.c" "$src/plugins/common/unnamed_file.c" \
      -o "$work/test_copy"
  gcc "${cflags[@]}" -O2 -g -I"$src/include" -I"$src/plugins/dd" \
      "$src/tests/dd/test_plugin.c" -ldl -o "$work/test_plugin"
fi
exported=$(nm -D --defined-only "$work/dd.so" | awk '$2 == "T" {print $3}')
[ "$exported" = vmsnap_plugin_init ] || { echo "FAIL: dd.so exports: $exported" >&2; exit 1; }
echo "ok   dd.so exports only vmsnap_plugin_init"

mkdir "$work/local" "$work/tmpfs"
mount -t tmpfs -o size=16m tmpfs "$work/tmpfs"
truncate -s 64M "$work/dev.img"
loopdev=$(losetup --find --show "$work/dev.img")
"$work/test_copy" "$work/local" --nospc "$work/tmpfs" --blockdev "$loopdev"

"$work/test_plugin" "$work/dd.so" "$work/local" "$loopdev" "$work/tmpfs"
bash "$src/tests/dd/run-btrfs-test.sh" "$work" $bench
if [ "$bench" = --bench ]; then
  "$work/test_copy" "$work/local" --bench 1024
fi
echo "all dd tests passed"
