#!/usr/bin/env bash
# bench-lvm.sh — vmsnap's lvm backend against the lvm commands typed by
# hand, in the same boot: create / delete / revert of a classic LV
# (lvcreate -s -L, lvremove, lvconvert --merge) and of a thin LV
# (lvcreate -s, lvremove, the branch-and-rename sequence of a thin revert).
# Runs INSIDE the test guest (this host's kernel has no device-mapper):
#
#   tests/vm/run-in-guest.sh --disk bench:2048 -- bash bench/bench-lvm.sh
#   bench/bench-lvm.sh [--disk /dev/vdb] [--runs 5] [--size 256M] [--snapctl PATH]
#
# Wipes --disk. Prints one table on stdout (median wall times, ratio, and
# vmsnap's overhead in ms and in % of the lvm commands' time; target: at
# most 10%); progress on stderr. A benchmark, not a test: exits 0 even when
# the target is missed. See bench/README.md.
set -euo pipefail
export LC_ALL=C LVM_SUPPRESS_FD_WARNINGS=1
pgrep -x systemd-udevd >/dev/null 2>&1 || export DM_DISABLE_UDEV=1

root=$(cd "$(dirname "$0")/.." && pwd)
disk=/dev/vdb
runs=5
size_arg=256M
snapctl=""

usage() {
  sed -n '2,14s/^# \{0,1\}//p' "$0"
  exit "${1:-0}"
}
die() { printf 'bench-lvm: %s\n' "$*" >&2; exit 1; }
log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

while [ $# -gt 0 ]; do
  case $1 in
    --disk) disk=${2:?}; shift 2 ;;
    --runs) runs=${2:?}; shift 2 ;;
    --size) size_arg=${2:?}; shift 2 ;;
    --snapctl) snapctl=${2:?}; shift 2 ;;
    -h|--help) usage 0 ;;
    *) printf 'bench-lvm: unknown argument %s\n' "$1" >&2; usage 2 ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
[ "$(id -u)" = 0 ] || die "run as root (inside the guest)"
[ -b "$disk" ] || die "$disk is not a block device (give the guest a disk: --disk bench:2048)"
[ -e /dev/mapper/control ] || die "no device-mapper here: run it inside the guest"
command -v lvm >/dev/null || die "lvm not found (install lvm2)"
work=$(mktemp -d /tmp/vmsnap-bench-lvm.XXXXXX)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
bench_snapctl
plugins=$(cd "$(dirname "$snapctl")/.." && pwd)/lib/vmsnap/plugins
[ -f "$plugins/lvm.so" ] || die "no lvm plugin at $plugins/lvm.so"

VG=vmsnapbench
cleanup() {
  set +e
  lvm vgremove -qq -ff -y "$VG" >/dev/null 2>&1
  lvm pvremove -qq -ff -y "$disk" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
lvm pvcreate -qq -y "$disk" >/dev/null
lvm vgcreate -qq "$VG" "$disk" >/dev/null
lvm lvcreate -qq -L "$size_arg" -n cl "$VG" >/dev/null
size_mib=$(($(numfmt --from=iec "$size_arg") >> 20))
((size_mib >= 128)) || die "--size must be at least 128M"
# Room in the pool for the LV and what its snapshots keep while runs overwrite it.
lvm lvcreate -qq -L "$((3 * size_mib))M" -T "$VG/pool" >/dev/null
lvm lvcreate -qq -V "$size_arg" -T "$VG/pool" -n th >/dev/null
log "writing $size_arg into $VG/cl and $VG/th"
for lv in cl th; do dd if=/dev/urandom of="/dev/$VG/$lv" bs=1M count="$size_mib" oflag=direct status=none; done
snap_mib=64

SC=("$snapctl" --state-dir "$work/state" --plugin-dir "$plugins" --progress none)
sc() { "${SC[@]}" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; die "snapctl $* failed"; }; }
l() { lvm "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; die "lvm $* failed"; }; }
t() { # t CMD...: wall time of CMD in microseconds
  local t0=$EPOCHREALTIME
  "$@"
  local t1=$EPOCHREALTIME
  echo $((${t1/./} - ${t0/./}))
}
# The same change by hand: a thin revert (snapshot of the snapshot, swap by
# renames, activate at boot, drop the old state).
thin_revert_by_hand() {
  l lvcreate -qq -s -n th-new "$VG/$1"
  l lvrename -qq "$VG" th th-old
  l lvrename -qq "$VG" th-new th
  l lvchange -qq -kn "$VG/th"
  l lvchange -qq -ay "$VG/th"
  l lvremove -qq -f "$VG/th-old"
}
scribble() { dd if=/dev/urandom of="/dev/$VG/$1" bs=1M count=8 oflag=direct status=none; }

sc create cl --name warm --disk "vda=/dev/$VG/cl,size=${snap_mib}M"
sc delete cl warm
sc create th --name warm --disk "vda=/dev/$VG/th"
sc delete th warm

declare -a vcc=() bcc=() vcd=() bcd=() vcr=() bcr=() vtc=() btc=() vtd=() btd=() vtr=() btr=()
for ((r = 0; r < runs; r++)); do
  log "run $((r + 1))/$runs"
  # classic
  vcc+=("$(t sc create cl --name "r$r")")
  bcc+=("$(t l lvcreate -qq -s -n "h$r" -L "${snap_mib}M" "$VG/cl")")
  scribble cl
  # vmsnap's revert merges and keeps the point (a fresh snapshot): the same by hand.
  vcr+=("$(t sc revert --force cl "r$r")")
  scribble cl
  bcr+=("$(t bash -c "lvm lvconvert -qq --merge -y -i 1 $VG/h$r >/dev/null 2>&1 &&
                      lvm lvcreate -qq -s -n h$r -L ${snap_mib}M $VG/cl >/dev/null 2>&1")")
  vcd+=("$(t sc delete cl "r$r")")
  bcd+=("$(t l lvremove -qq -f "$VG/h$r")")
  # thin
  vtc+=("$(t sc create th --name "r$r")")
  btc+=("$(t l lvcreate -qq -s -n "h$r" "$VG/th")")
  scribble th
  vtr+=("$(t sc revert th "r$r")")
  scribble th
  btr+=("$(t thin_revert_by_hand "h$r")")
  vtd+=("$(t sc delete th "r$r")")
  btd+=("$(t l lvremove -qq -f "$VG/h$r")")
done

printf '%-8s %-7s %11s %11s %7s %12s %9s\n' kind op "vmsnap ms" "lvm ms" ratio "overhead ms" overhead
row() {
  local v b
  v=$(median "${@:3:$runs}")
  b=$(median "${@:$((3 + runs)):$runs}")
  printf '%-8s %-7s %11s %11s %7s %12s %8s%%\n' "$1" "$2" "$(msec "$v")" "$(msec "$b")" \
    "$(ratio "$v" "$b")" "$(msec $((v - b)))" "$(awk -v v="$v" -v b="$b" 'BEGIN {printf "%.0f", (v - b) * 100 / b}')"
}
row classic create "${vcc[@]}" "${bcc[@]}"
row classic revert "${vcr[@]}" "${bcr[@]}"
row classic delete "${vcd[@]}" "${bcd[@]}"
row thin create "${vtc[@]}" "${btc[@]}"
row thin revert "${vtr[@]}" "${btr[@]}"
row thin delete "${vtd[@]}" "${btd[@]}"
log "done (target: overhead at most 10% of the lvm commands' time)"
