#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs what is
# missing, builds, runs every test (unit tests of the core and integration
# tests on real files, a real loop-mounted btrfs and real qemu-img), then
# the guest tests (label vm: a Debian guest under QEMU, for what this
# host's kernel lacks), then the host tests again under AddressSanitizer +
# UBSan. Needs root (loop mounts, debootstrap).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"

echo "== build (RelWithDebInfo, -Wall -Wextra -Werror)"
"$root/scripts/build.sh" "$root/build"
echo "== tests"
(cd "$root/build" && ctest --output-on-failure -j2 -LE vm)
# Alone: a TCG guest takes both cores (the first run builds the image, ~2 min).
echo "== guest tests (QEMU TCG)"
(cd "$root/build" && ctest --output-on-failure -L vm)

echo "== build with AddressSanitizer + UBSan"
"$root/scripts/build.sh" "$root/build-asan" -DVMSNAP_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
echo "== tests under ASan + UBSan"
(cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j2 -LE vm)
