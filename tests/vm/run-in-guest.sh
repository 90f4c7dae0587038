#!/usr/bin/env bash
# run-in-guest.sh [OPTIONS] -- COMMAND [ARGS...]
# Boots the cached Debian guest (build-image.sh) under QEMU TCG, runs
# COMMAND in it as root, prints its stdout and stderr, and exits with its
# exit code. Every run starts from the same clean root (snapshot=on).
#
#   --disk NAME:MIB   a fresh sparse raw test disk; the guest sees them in the
#                     order given as /dev/vdb, /dev/vdc, ... (vda is the root),
#                     also as /dev/disk/by-id/virtio-NAME (NAME: [A-Za-z0-9_-], <= 20)
#   --udev            start systemd-udevd in the guest (default: no udev, and
#                     DM_DISABLE_UDEV=1 so LVM makes its own /dev nodes)
#   --timeout S       the whole run, boot included (default 900)
#   --cpu MODEL       QEMU's -cpu (default max; qemu64 runs OpenSSL-heavy
#                     scripts faster under TCG, and Xen's PV dom0 needs it)
#   --share DIR       also mount host DIR at the same path in the guest (the
#                     repository root always is: its build tree works as is)
#   --env NAME[=VAL]  set NAME in the command's environment (bare NAME: the
#                     host's value); the command gets a clean environment
#   --image DIR       the image (default $VMSNAP_VM_IMAGE, else build/vm)
#   --keep            keep the scratch dir (console log, disks) and print it
#   --quiet           no "vm:" timing line on stderr
#
# Exit codes besides the command's own:
#   123  the guest never started the command (boot failed or hung)
#   124  the command started but did not end: time ran out or the guest died
#   125  the harness failed: bad usage, no image, QEMU would not start,
#        or it was interrupted (QEMU is killed with it)
# On 123 and 124 the end of the guest's console log is printed.
set -euo pipefail
VM_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$VM_DIR/../.." && pwd)
# shellcheck source=tests/vm/lib.sh
. "$VM_DIR/lib.sh"

harness_fail() {
  echo "run-in-guest: $*" >&2
  exit 125
}

disks=() shares=("$ROOT") envs=() udev=0 limit=900 keep=0 quiet=0 cpu=max
image=${VMSNAP_VM_IMAGE:-$ROOT/build/vm}
while [ $# -gt 0 ]; do
  case $1 in
  --disk)
    [[ ${2:-} =~ ^[A-Za-z0-9_-]{1,20}:[1-9][0-9]*$ ]] || harness_fail "--disk wants NAME:MIB, got '${2:-}'"
    disks+=("$2")
    shift 2
    ;;
  --udev) udev=1 && shift ;;
  --timeout)
    [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || harness_fail "--timeout wants seconds, got '${2:-}'"
    limit=$2
    shift 2
    ;;
  --cpu)
    [[ ${2:-} =~ ^[A-Za-z0-9_.,=+-]+$ ]] || harness_fail "--cpu wants a QEMU CPU model, got '${2:-}'"
    cpu=$2
    shift 2
    ;;
  --share)
    [ -d "${2:-}" ] || harness_fail "--share: '${2:-}' is not a directory"
    shares+=("$(cd "$2" && pwd)")
    shift 2
    ;;
  --env)
    [[ ${2:-} =~ ^[A-Za-z_][A-Za-z0-9_]*(=|$) ]] || harness_fail "--env wants NAME or NAME=VALUE, got '${2:-}'"
    if [[ $2 == *=* ]]; then envs+=("$2"); else envs+=("$2=${!2-}"); fi
    shift 2
    ;;
  --image)
    image=${2:-}
    shift 2
    ;;
  --keep) keep=1 && shift ;;
  --quiet) quiet=1 && shift ;;
  --) shift && break ;;
  *) harness_fail "unknown option '$1' (usage: see the head of $0)" ;;
  esac
done
[ $# -gt 0 ] || harness_fail "no command (usage: $0 [OPTIONS] -- COMMAND [ARGS...])"
command -v qemu-system-x86_64 >/dev/null || harness_fail "qemu-system-x86_64 missing (scripts/deps.sh)"
for f in root.img vmlinuz initrd.img; do
  [ -s "$image/$f" ] || harness_fail "no $image/$f: build the image with tests/vm/build-image.sh $image"
done
vm_image_ok "$image" ||
  echo "run-in-guest: warning: $image is older than its inputs; rebuild with tests/vm/build-image.sh $image" >&2

s=$(mktemp -d "${TMPDIR:-/tmp}/vmsnap-vm.XXXXXX")
qpid=
# shellcheck disable=SC2317 # run by the EXIT trap
finish() {
  local rc=$?
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null
  if [ "$keep" = 1 ]; then
    echo "run-in-guest: scratch kept in $s" >&2
  else
    rm -rf "$s"
  fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 125' INT TERM HUP

# The control share: what the guest's init reads (see guest-init.sh).
cp "$VM_DIR/guest-init.sh" "$s/guest-init.sh"
printf '%s\0' "$@" >"$s/argv"
printf '%s\0' ${envs[@]+"${envs[@]}"} >"$s/env"
pwd >"$s/cwd"
[ "$udev" = 1 ] && : >"$s/udev"

# shellcheck disable=SC2054 # commas inside QEMU's options
qemu=(qemu-system-x86_64 -accel tcg,thread=multi -cpu "$cpu" -smp 2 -m 2048
  -nographic -no-reboot -nodefaults -serial "file:$s/console.log"
  -kernel "$image/vmlinuz" -initrd "$image/initrd.img"
  -append "root=/dev/vda rw console=ttyS0 init=/sbin/vmsnap-init fsck.mode=skip quiet panic=-1"
  -device virtio-rng-pci
  -drive "file=$image/root.img,if=none,id=root,format=raw,snapshot=on"
  -device virtio-blk-pci,drive=root
  -virtfs "local,path=$s,mount_tag=vmsnapctl,security_model=none,id=vmsnapctl")
# Test disks in the order given: vdb, vdc, ... cache=unsafe: they are
# thrown away after the run, so host flushes would only cost time.
mkdir "$s/disks"
i=0
for d in ${disks[@]+"${disks[@]}"}; do
  name=${d%%:*}
  [ -e "$s/disks/$name.img" ] && harness_fail "--disk $name given twice"
  truncate -s "${d#*:}M" "$s/disks/$name.img"
  qemu+=(-drive "file=$s/disks/$name.img,if=none,id=disk$i,format=raw,cache=unsafe"
    -device "virtio-blk-pci,drive=disk$i,serial=$name")
  i=$((i + 1))
done
# Shares at their host paths; one inside another is reached through it.
: >"$s/shares"
i=0
for dir in "${shares[@]}"; do
  [ "$dir" != / ] || harness_fail "cannot share / itself"
  [[ $dir != *[$'\n',]* ]] || harness_fail "cannot share '$dir' (newline or comma in the path)"
  covered=0
  for other in "${shares[@]}"; do
    [[ $dir/ == "$other"/?* ]] && covered=1
  done
  cut -d" " -f2- "$s/shares" | grep -qxF -- "$dir" && covered=1
  [ "$covered" = 1 ] && continue
  echo "share$i $dir" >>"$s/shares"
  qemu+=(-virtfs "local,path=$dir,mount_tag=share$i,security_model=none,multidevs=remap,id=share$i")
  i=$((i + 1))
done

t0=$EPOCHREALTIME
timeout -k 10 "$limit" "${qemu[@]}" </dev/null >"$s/qemu.log" 2>&1 &
qpid=$!
qrc=0
wait "$qpid" || qrc=$?
qpid=
t1=$EPOCHREALTIME

console_tail() {
  echo "--- last lines of the guest console ($s/console.log):" >&2
  tail -n 40 "$s/console.log" >&2 2>/dev/null || true
  if [ -s "$s/qemu.log" ]; then
    echo "--- QEMU:" >&2
    tail -n 10 "$s/qemu.log" >&2
  fi
}
partial_output() {
  echo "--- the command's output so far:" >&2
  cat "$s/stdout" 2>/dev/null || true
  cat "$s/stderr" >&2 2>/dev/null || true
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

if [ ! -e "$s/started" ]; then
  if [ "$qrc" != 0 ] && [ "$qrc" != 124 ] && [ "$qrc" != 137 ]; then
    cat "$s/qemu.log" >&2
    harness_fail "QEMU exited with $qrc before the guest ran anything"
  fi
  echo "run-in-guest: the guest never started the command ($(secs "$t0" "$t1") s, limit ${limit} s)" >&2
  console_tail
  exit 123
fi
started=$(stat -c '%.3Y' "$s/started")
if [ ! -e "$s/rc" ]; then
  why="the guest stopped"
  [ "$qrc" = 124 ] || [ "$qrc" = 137 ] && why="the time ran out (${limit} s)"
  echo "run-in-guest: the command did not end: $why after $(secs "$started" "$t1") s" >&2
  partial_output
  console_tail
  exit 124
fi
cat "$s/stdout"
cat "$s/stderr" >&2
rc=$(cat "$s/rc")
[ "$quiet" = 1 ] ||
  echo "vm: boot to command $(secs "$t0" "$started") s, command $(secs "$started" "$(stat -c '%.3Y' "$s/rc")") s, total $(secs "$t0" "$t1") s, exit $rc" >&2
exit "$rc"
