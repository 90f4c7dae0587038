#!/bin/bash
# guest-init.sh — PID 1 of the test guest, after the image's stub
# (/sbin/vmsnap-init, see build-image.sh) mounted proc, sys, dev, /run and
# the control share at /run/vmsnap-ctl. run-in-guest.sh copies this file
# into the control share on every run, so it changes without a new image.
#
# Control share (written by run-in-guest.sh): argv and env (NUL-separated),
# cwd, shares ("TAG PATH" lines), udev (present = start udev). Test disks
# carry their name as virtio serial. Written back: started (the guest's uptime),
# stdout, stderr, rc (the command's exit code, written last).
#
# It must never exit: PID 1 exiting panics the kernel. Every path ends in
# poweroff, which makes QEMU exit (-no-reboot).
C=/run/vmsnap-ctl
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

say() { echo "vmsnap-init: $*" >/dev/console; }
off() {
  sync
  exec busybox poweroff -f
}
trap off EXIT

mount -t tmpfs -o mode=1777 tmp /tmp
mkdir -p /dev/pts /dev/shm /run/lock /run/lvm
mountpoint -q /dev/pts || mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
hostname vmsnap-guest
ip link set lo up
# Without udev nothing makes /dev/loop-control or /dev/mapper/control
# until their modules are in; dm targets and filesystems load on demand.
modprobe -a loop dm_mod || say "loop or dm_mod did not load"

# The host's directories at their host paths, so host-built binaries (with
# RPATHs into the build tree) and absolute paths in env vars work here.
# cache=loose: the guest caches what it read (no revalidation against the
# host), which makes starting a host-built program 3-5x faster; the host
# must not change these trees while a guest runs. Writes reach the host at
# the latest with the sync before poweroff.
while read -r tag path; do
  [ -n "$tag" ] || continue
  mkdir -p "$path"
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose "$tag" "$path" ||
    say "cannot mount share $tag at $path"
done <"$C/shares"

if [ -e "$C/udev" ]; then
  /lib/systemd/systemd-udevd --daemon
  udevadm trigger --action=add
  udevadm settle --timeout=120 || say "udevadm settle timed out"
else
  # No udev: LVM makes its own /dev nodes (else "device not cleared").
  export DM_DISABLE_UDEV=1
  # The initramfs's udevd left its control socket in the /run it handed
  # over; libudev would take it for a running udev.
  rm -rf /run/udev
  # /dev/disk/by-id/virtio-NAME as udev would make it, from each test
  # disk's serial (run-in-guest.sh sets serial=NAME).
  mkdir -p /dev/disk/by-id
  for s in /sys/block/vd*/serial; do
    name=$(cat "$s")
    dev=${s%/serial}
    [ -n "$name" ] && ln -sfn "../../${dev##*/}" "/dev/disk/by-id/virtio-$name"
  done
fi

mapfile -d '' argv <"$C/argv"
mapfile -d '' envv <"$C/env"
cwd=$(cat "$C/cwd")
[ -d "$cwd" ] || cwd=/
export HOME=/root TMPDIR=/tmp
for kv in "${envv[@]}"; do
  export "${kv?}"
done

read -r up _ </proc/uptime
echo "$up" >"$C/started"
rc=0
(cd "$cwd" && exec "${argv[@]}") >"$C/stdout" 2>"$C/stderr" </dev/null || rc=$?
# The exit code last, through a rename: its presence means the command ended.
echo "$rc" >"$C/rc.part" && mv "$C/rc.part" "$C/rc"
