#!/usr/bin/env bash
# bench-btrfs.sh — vmsnap's btrfs backend against btrfs(8) typed by hand:
# create / delete / revert of a subvolume holding a 4 GiB file, with 10,
# 100 and 500 snapshots already there.
#
#   bench/bench-btrfs.sh [--size 4G] [--runs 7] [--counts "10 100 500"]
#                        [--snapctl PATH] [--dir DIR]
#
# Needs root (loop mount) and btrfs-progs. Prints one table on stdout;
# progress goes to stderr. A benchmark, not a test: exits 0 even when a
# target is missed (non-zero only when it could not run). See bench/README.md.
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "$0")/.." && pwd)
size_arg=4G
runs=7
counts="10 100 500"
snapctl=""
base_dir=/var/tmp

usage() {
  sed -n '2,11s/^# \{0,1\}//p' "$0"
  exit "${1:-0}"
}
die() { printf 'bench-btrfs: %s\n' "$*" >&2; exit 1; }
log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

while [ $# -gt 0 ]; do
  case $1 in
    --size) size_arg=${2:?}; shift 2 ;;
    --runs) runs=${2:?}; shift 2 ;;
    --counts) counts=${2:?}; shift 2 ;;
    --snapctl) snapctl=${2:?}; shift 2 ;;
    --dir) base_dir=${2:?}; shift 2 ;;
    -h|--help) usage 0 ;;
    *) printf 'bench-btrfs: unknown argument %s\n' "$1" >&2; usage 2 ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
size=$(numfmt --from=iec "$size_arg") || die "cannot read --size $size_arg"
MiB=$((1 << 20))
((size >= 64 * MiB && size % (64 * MiB) == 0)) || die "--size must be a multiple of 64M"
[ "$(id -u)" = 0 ] || die "run as root: the benchmark loop-mounts a btrfs image"
for t in btrfs mkfs.btrfs losetup mount numfmt; do command -v "$t" >/dev/null || die "$t not found (install btrfs-progs)"; done
if [ -z "$snapctl" ]; then
  snapctl=$root/build/bin/snapctl
  [ -x "$snapctl" ] || "$root/scripts/build.sh" "$root/build" >&2
fi
[ -x "$snapctl" ] || die "no snapctl at $snapctl"
plugins=$(cd "$(dirname "$snapctl")/.." && pwd)/lib/vmsnap/plugins
[ -f "$plugins/btrfs.so" ] || die "no btrfs plugin at $plugins/btrfs.so (build with libbtrfsutil-dev)"

W=$(mktemp -d "$base_dir/vmsnap-bench-btrfs.XXXXXX")
M=$W/mnt
cleanup() {
  set +e
  mountpoint -q "$M" && umount "$M"
  [ -n "${LOOP:-}" ] && losetup -d "$LOOP"
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Room for the file, the metadata of 500+ snapshots, and what a revert
# rewrites nothing of (snapshots share every extent).
img_size=$((size + size / 2 + 1024 * MiB))
truncate -s "$img_size" "$W/btrfs.img"
mkfs.btrfs -q "$W/btrfs.img" >/dev/null 2>&1 || die "mkfs.btrfs failed"
mkdir "$M"
LOOP=$(losetup -f --show "$W/btrfs.img")
mount "$LOOP" "$M"
V=$M/vm
btrfs subvolume create "$V" >/dev/null
log "writing a $size_arg file into $V"
head -c $((64 * MiB)) /dev/urandom >"$W/block"
for ((i = 0; i < size / (64 * MiB); i++)); do cat "$W/block"; done >"$V/disk.raw"
rm "$W/block"
sync

SC=("$snapctl" --state-dir "$W/state" --plugin-dir "$plugins" --progress none)
sc() { "${SC[@]}" "$@" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; die "snapctl $* failed"; }; }
btr() { btrfs "$@" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; die "btrfs $* failed"; }; }
# t CMD...: runs CMD, prints its wall time in microseconds.
t() {
  local t0=$EPOCHREALTIME
  "$@"
  local t1=$EPOCHREALTIME
  echo $(((${t1/./} - ${t0/./})))
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
ms() { awk -v u="$1" 'BEGIN {printf "%.2f", u / 1000}'; }
# Settles the filesystem between measurements (the cleaner, the commit).
settle() { btrfs filesystem sync "$M" >/dev/null; }

have=0
sc create bench --disk "vda=$V" --name base
have=1
mkdir -p "$M/by-hand"

printf '%-8s %-7s %12s %12s %8s %14s\n' snaps op "vmsnap ms" "btrfs ms" ratio "overhead ms"
for n in $counts; do
  log "making $n existing snapshots (have $have)"
  while [ "$have" -lt "$n" ]; do
    sc create bench --name "e$have"
    have=$((have + 1))
  done
  # One untimed round: caches warm for both sides.
  sc create bench --name warm && sc delete bench warm
  btr subvolume snapshot -r "$V" "$M/by-hand/warm" && btr subvolume delete "$M/by-hand/warm"
  settle
  declare -a vc=() bc=() vd=() bd=() vr=() br=()
  for ((r = 0; r < runs; r++)); do
    # Which side goes first flips every run: the background work a command
    # leaves (btrfs cleans a deleted subvolume after the delete returned,
    # and the reverts delete a 4 GiB one) then falls on both sides alike.
    order="vmsnap btrfs"
    ((r % 2 == 0)) || order="btrfs vmsnap"
    for side in $order; do
      settle
      if [ "$side" = vmsnap ]; then
        vc+=("$(t sc create bench --name "run$r")")
      else
        bc+=("$(t btr subvolume snapshot -r "$V" "$M/by-hand/run$r")")
      fi
    done
    for side in $order; do
      settle
      # Revert to the snapshot just made (nothing to undo, all the work done).
      if [ "$side" = vmsnap ]; then
        vr+=("$(t sc revert bench "run$r")")
      else
        br+=("$(t bash -c "btrfs subvolume snapshot '$M/by-hand/run$r' '$M/.vm.new' >/dev/null &&
                          mv '$V' '$M/.vm.old' && mv '$M/.vm.new' '$V' &&
                          btrfs subvolume delete '$M/.vm.old' >/dev/null")")
      fi
    done
    for side in $order; do
      settle
      if [ "$side" = vmsnap ]; then
        vd+=("$(t sc delete bench "run$r")")
      else
        bd+=("$(t btr subvolume delete "$M/by-hand/run$r")")
      fi
    done
  done
  for op in create revert delete; do
    case $op in
      create) v=$(median "${vc[@]}"); b=$(median "${bc[@]}") ;;
      revert) v=$(median "${vr[@]}"); b=$(median "${br[@]}") ;;
      delete) v=$(median "${vd[@]}"); b=$(median "${bd[@]}") ;;
    esac
    printf '%-8s %-7s %12s %12s %8s %14s\n' "$n" "$op" "$(ms "$v")" "$(ms "$b")" \
      "$(awk -v a="$v" -v b="$b" 'BEGIN {printf "%.2f", a / b}')" "$(ms $((v - b)))"
  done
done
log "done"
