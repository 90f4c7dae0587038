#!/bin/bash
# smoke-guest.sh PART... — runs INSIDE the test guest (see tests/vm/
# CMakeLists.txt). One boot, many checks, because a boot costs ~20 s under
# TCG. Parts, in the order given:
#   build          the host's build tree works here: snapctl --version, every
#                  backend in it loads and is available
#   lvm            LVM on the test disk named lvm (/dev/vdb): pvcreate,
#                  vgcreate, lvcreate, lvcreate -s (it keeps the old data),
#                  lvremove; with udev when udevd runs, else DM_DISABLE_UDEV=1
#   it:TEST        the host integration test tests/integration/TEST.sh,
#                  unchanged, with ctest's env vars, on an ext4 made on the
#                  test disk named scratch
# Environment: SNAPCTL, BUILD_DIR, SOURCE_DIR, PLUGIN_BUILD_DIR, as ctest
# sets them for integration tests.
set -euo pipefail
exec 2>&1 # one stream: FAIL lines stay next to what led to them

fail() {
  echo "FAIL: vm/smoke: $*"
  exit 1
}
t0=$SECONDS
passed() { echo "ok: $* ($((SECONDS - t0)) s)"; }

# disk NAME: the test disk run-in-guest.sh made with --disk NAME:...
disk() {
  readlink -f "/dev/disk/by-id/virtio-$1" || fail "no test disk named $1 (run-in-guest.sh --disk $1:MIB)"
}

part_build() {
  : "${SNAPCTL:?}" "${PLUGIN_BUILD_DIR:?}"
  [ -x "$SNAPCTL" ] || fail "SNAPCTL=$SNAPCTL is not visible in the guest (share not mounted?)"
  "$SNAPCTL" --version || fail "snapctl --version failed in the guest"
  # A library the guest lacks shows here as a backend that does not load.
  "$SNAPCTL" --plugin-dir "$PLUGIN_BUILD_DIR" --json plugins >/tmp/plugins.json ||
    fail "snapctl plugins failed in the guest"
  python3 - "$PLUGIN_BUILD_DIR" /tmp/plugins.json <<'EOF' || fail "not every backend loads in the guest"
import glob, json, os, sys
want = sorted(os.path.basename(p)[:-3] for p in glob.glob(sys.argv[1] + "/*.so"))
got = {p["name"]: p for p in json.load(open(sys.argv[2]))}
bad = [n for n in want if n not in got or not got[n]["available"]]
print("backends:", " ".join(want), "- not loaded or unavailable:", " ".join(bad) or "none")
sys.exit(1 if bad or not want else 0)
EOF
  passed "snapctl from the host build tree runs"
}

part_lvm() {
  local pv how
  if pgrep -x systemd-udevd >/dev/null; then
    [ -z "${DM_DISABLE_UDEV:-}" ] || fail "udevd runs but DM_DISABLE_UDEV is set"
    how="with udev"
  else
    [ "${DM_DISABLE_UDEV:-}" = 1 ] || fail "no udevd and DM_DISABLE_UDEV is not 1"
    how="without udev"
  fi
  lvm version | head -n 1 || fail "lvm version failed"
  pv=$(disk lvm)
  [ "$pv" = /dev/vdb ] || fail "the first test disk is $pv, expected /dev/vdb"
  pvcreate -q "$pv" || fail "pvcreate $pv"
  vgcreate -q smokevg "$pv" || fail "vgcreate"
  lvcreate -q -y -L 64M -n base smokevg || fail "lvcreate base"
  [ -b /dev/smokevg/base ] || fail "/dev/smokevg/base was not made"
  head -c 16M /dev/urandom >/tmp/data
  dd if=/tmp/data of=/dev/smokevg/base bs=1M oflag=direct status=none || fail "write base"
  lvcreate -q -y -s -L 32M -n snap smokevg/base || fail "lvcreate -s"
  dd if=/dev/zero of=/dev/smokevg/base bs=1M count=16 oflag=direct status=none || fail "overwrite base"
  cmp -n $((16 << 20)) /tmp/data /dev/smokevg/snap || fail "the snapshot does not hold the old data"
  lvremove -q -y smokevg/snap smokevg/base || fail "lvremove"
  vgremove -q -y smokevg || fail "vgremove"
  pvremove -q "$pv" || fail "pvremove"
  [ ! -e /dev/mapper/smokevg-base ] || fail "/dev/mapper/smokevg-base left behind"
  passed "LVM $how: pvcreate, vgcreate, lvcreate, lvcreate -s, lvremove on $pv"
}

part_it() {
  local test=$1 dev
  : "${SOURCE_DIR:?}"
  dev=$(disk scratch)
  mkfs.ext4 -q "$dev" || fail "mkfs.ext4 $dev"
  mkdir -p /mnt/scratch
  mount "$dev" /mnt/scratch || fail "mount $dev"
  TMPDIR=/mnt/scratch bash "$SOURCE_DIR/tests/integration/$test.sh" ||
    fail "integration test $test failed in the guest"
  umount /mnt/scratch
  passed "integration test $test in the guest"
}

[ $# -gt 0 ] || fail "no part given (build, lvm, it:TEST)"
for part in "$@"; do
  case $part in
  build) part_build ;;
  lvm) part_lvm ;;
  it:?*) part_it "${part#it:}" ;;
  *) fail "unknown part '$part'" ;;
  esac
done
echo "PASS: vm/smoke $*"
