#!/usr/bin/env bash
# build-image.sh OUTDIR — builds the Debian bookworm test guest once and
# caches it in OUTDIR (e.g. build/vm): root.img (ext4, 2 GiB), vmlinuz,
# initrd.img, and a stamp of the inputs (see lib.sh: the scripts, the
# package list, the host's library versions). When the stamp matches, it
# does nothing; else it rebuilds from scratch. Needs root (debootstrap).
#
# No archive host name is written here: debootstrap uses its own default,
# and the upgrade uses the host's own apt sources, so the guest gets the
# very versions the host builds against (security updates included).
set -euo pipefail
VM_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/vm/lib.sh
. "$VM_DIR/lib.sh"

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "build-image: needs root (debootstrap, chroot)" >&2; exit 1; }
mkdir -p "$1"
out=$(cd "$1" && pwd)
log=$out/build.log

# One builder at a time (ctest's fixture and a person may race).
exec 9>"$out/.lock"
timeout 3600 flock 9 || { echo "build-image: $out/.lock held for an hour" >&2; exit 1; }

if vm_image_ok "$out"; then
  echo "build-image: $out is up to date"
  exit 0
fi

rootfs=$out/rootfs
# rm_rootfs: removes our own scratch tree, never through a mount that a
# killed debootstrap may have left in it (proc, sys).
rm_rootfs() {
  local m
  [ -d "$rootfs" ] || return 0
  awk -v r="$rootfs/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" || true; done
  rm -rf --one-file-system "$rootfs"
}
cleanup() {
  rm_rootfs
  rm -f "$out/root.img.part"
}
trap cleanup EXIT

die() {
  echo "build-image: FAILED: $*" >&2
  echo "--- last lines of $log:" >&2
  tail -n 40 "$log" >&2 || true
  exit 1
}

# step SECONDS WHAT CMD...: runs CMD bounded in time, output to the log.
step() {
  local secs=$1 what=$2 t0=$SECONDS
  shift 2
  echo "== $what" >>"$log"
  timeout -k 10 "$secs" "$@" >>"$log" 2>&1 || die "$what (exit $?, limit ${secs}s)"
  echo "build-image: $what: $((SECONDS - t0)) s"
}

: >"$log"
rm -f "$out/stamp"
rm_rootfs
if ! command -v debootstrap >/dev/null; then
  step 600 "install debootstrap" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends debootstrap
fi
command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 missing (apt-get install e2fsprogs)"

t_all=$SECONDS
mkdir -p "$out/debs"
# --cache-dir keeps the .debs: a rebuild after a script change downloads nothing.
step 1800 "debootstrap" debootstrap --variant=minbase --cache-dir="$out/debs" \
  --include="$(vm_packages | paste -sd,)" bookworm "$rootfs"

# The host's apt sources (only the usual file kinds), then an upgrade: the
# guest runs binaries built against the host's libraries.
rm -f "$rootfs/etc/apt/sources.list"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -s "$f" ] && cp "$f" "$rootfs/etc/apt/${f#/etc/apt/}"
done
# No service may start inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod 755 "$rootfs/usr/sbin/policy-rc.d"
step 600 "apt-get update (host sources)" chroot "$rootfs" apt-get update -q
step 1200 "apt-get upgrade" chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive \
  apt-get -y -q -o Dpkg::Options::=--force-confold upgrade
rm -f "$rootfs/usr/sbin/policy-rc.d"
chroot "$rootfs" apt-get clean >>"$log" 2>&1
rm -rf "$rootfs"/var/lib/apt/lists/*

# A small initrd: just what finds the root disk (virtio, ext4). MODULES=most
# makes a 42 MB one that costs seconds of every TCG boot to unpack; the
# rest loads from the root's /lib/modules once it is mounted.
printf 'MODULES=list\n' >"$rootfs/etc/initramfs-tools/conf.d/vmsnap.conf"
printf '%s\n' virtio_pci virtio_blk ext4 crc32c_generic >>"$rootfs/etc/initramfs-tools/modules"
step 600 "update-initramfs (MODULES=list)" chroot "$rootfs" update-initramfs -u -k all

# The root disk is found through the initrd: check it can.
kver=$(find "$rootfs/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
[ -n "$kver" ] || die "no kernel modules in the guest"
[ -f "$rootfs/boot/vmlinuz-$kver" ] || die "no kernel /boot/vmlinuz-$kver in the guest"
[ -f "$rootfs/boot/initrd.img-$kver" ] || die "no initrd for $kver (initramfs-tools did not run?)"
chroot "$rootfs" lsinitramfs "/boot/initrd.img-$kver" >"$out/initrd.list" 2>>"$log" ||
  die "lsinitramfs failed"
for m in virtio_blk virtio_pci ext4; do
  grep -q "/$m\.ko" "$out/initrd.list" || die "the initrd has no $m module"
done

# PID 1 of the guest: a stub that mounts the basics and the harness's
# control share, then runs the init script found there (run-in-guest.sh
# puts guest-init.sh in it), so the harness can change without a new image.
cat >"$rootfs/sbin/vmsnap-init" <<'EOF'
#!/bin/sh
# The initramfs moved its proc, sys, dev and run here; mount what is not.
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sys /sys
mountpoint -q /dev || mount -t devtmpfs dev /dev
mountpoint -q /run || mount -t tmpfs -o mode=0755 run /run
modprobe -a 9pnet_virtio 9p
mkdir -p /run/vmsnap-ctl
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 vmsnapctl /run/vmsnap-ctl &&
  [ -f /run/vmsnap-ctl/guest-init.sh ]; then
  exec /bin/bash /run/vmsnap-ctl/guest-init.sh
fi
echo "vmsnap-init: no control share with guest-init.sh; powering off" >/dev/console
exec busybox poweroff -f
EOF
chmod 755 "$rootfs/sbin/vmsnap-init"
echo vmsnap-guest >"$rootfs/etc/hostname"

cp "$rootfs/boot/vmlinuz-$kver" "$out/vmlinuz"
cp "$rootfs/boot/initrd.img-$kver" "$out/initrd.img"
# Xen's hypervisor, uncompressed for QEMU's multiboot loader.
xen=$(find "$rootfs/boot" -name 'xen-4.17*-amd64.gz' | sort -V | tail -n 1)
[ -n "$xen" ] || die "no Xen hypervisor in the guest's /boot"
zcat "$xen" >"$out/xen"
echo "$kver" >"$out/kernel-version"

rm -f "$out/root.img"
step 600 "mkfs.ext4 -d (root.img, 2 GiB)" mkfs.ext4 -q -F -L vmsnap-root -d "$rootfs" "$out/root.img.part" 2G
mv "$out/root.img.part" "$out/root.img"
vm_inputs_hash >"$out/stamp"
echo "build-image: $out ready in $((SECONDS - t_all)) s (kernel $kver)"
