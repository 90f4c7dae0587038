#!/usr/bin/env bash
# bench-dd.sh — vmsnap's dd backend against the tools a user would use
# instead (cp, dd, qemu-img convert, cp --reflink), on big raw images.
#
#   bench/bench-dd.sh [--size 4G] [--runs 3] [--snapctl PATH]
#                     [--dir DIR] [--tiny-runs 10] [--no-btrfs]
#
# Needs root (drop_caches, loop mount). Prints one table on stdout; progress
# goes to stderr. A benchmark, not a test: exits 0 even when a target is
# missed (non-zero only when it could not run). See bench/README.md.
set -euo pipefail
export LC_ALL=C # "." as the decimal separator, in $EPOCHREALTIME too

root=$(cd "$(dirname "$0")/.." && pwd)
size_arg=4G
runs=3
tiny_runs=10
snapctl=""
base_dir=/var/tmp
do_btrfs=1

usage() {
  sed -n '2,10s/^# \{0,1\}//p' "$0"
  exit "${1:-0}"
}
die() { printf 'bench-dd: %s\n' "$*" >&2; exit 1; }
log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

while [ $# -gt 0 ]; do
  case $1 in
    --size) size_arg=${2:?--size needs a value}; shift 2 ;;
    --size=*) size_arg=${1#*=}; shift ;;
    --runs) runs=${2:?--runs needs a value}; shift 2 ;;
    --runs=*) runs=${1#*=}; shift ;;
    --tiny-runs) tiny_runs=${2:?--tiny-runs needs a value}; shift 2 ;;
    --snapctl) snapctl=${2:?--snapctl needs a path}; shift 2 ;;
    --snapctl=*) snapctl=${1#*=}; shift ;;
    --dir) base_dir=${2:?--dir needs a directory}; shift 2 ;;
    --dir=*) base_dir=${1#*=}; shift ;;
    --no-btrfs) do_btrfs=0; shift ;;
    -h|--help) usage 0 ;;
    *) printf 'bench-dd: unknown argument %s\n' "$1" >&2; usage 2 ;;
  esac
done

[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer, not $runs"
[[ $tiny_runs =~ ^[1-9][0-9]*$ ]] || die "--tiny-runs must be a positive integer"
size=$(numfmt --from=iec "$size_arg" 2>/dev/null || numfmt --from=auto "$size_arg" 2>/dev/null) ||
  die "cannot read --size $size_arg (examples: 4G, 512M)"
MiB=$((1 << 20))
blk=$((64 * MiB))   # the random block the dense image repeats
chunk=$((4 * MiB))  # the data blocks of the sparse image
(( size >= blk && size % chunk == 0 )) ||
  die "--size must be at least 64M and a multiple of 4M (got $size bytes)"
[ "$(id -u)" = 0 ] || die "run as root: cold runs drop the page cache and the btrfs part loop-mounts a file"
[ -w /proc/sys/vm/drop_caches ] || die "/proc/sys/vm/drop_caches is not writable; cannot measure cold runs"
for t in cp dd truncate stat numfmt shuf sync; do
  command -v "$t" >/dev/null || die "$t not found"
done
have_qemu=0; command -v qemu-img >/dev/null && have_qemu=1
if (( do_btrfs )) && ! command -v mkfs.btrfs >/dev/null; then
  log "mkfs.btrfs not found (apt-get install btrfs-progs): skipping the btrfs part"
  do_btrfs=0
fi

# ---------------------------------------------------------------- work area
mkdir -p "$base_dir"
# Peak use on the work filesystem: the dense image, its base snapshot and the
# revert's staging copy (3x), the sparse image and its copies (0.2x), then the
# btrfs backing file (about 1x, after the ext4 images are gone); plus 2 GiB.
need=$(( size * 33 / 10 + (2 << 30) ))
avail=$(( $(stat -f -c '%a * %S' "$base_dir") ))
if (( avail < need )); then
  die "$(printf 'not enough free space in %s: %s free, %s needed for --size %s; free some space, use --dir on a bigger filesystem or a smaller --size' \
    "$base_dir" "$(numfmt --to=iec "$avail")" "$(numfmt --to=iec "$need")" "$size_arg")"
fi

work=$(mktemp -d "$base_dir/vmsnap-bench.XXXXXX")
mnt=""
cleanup() {
  local rc=$?
  set +e
  if [ -n "$mnt" ] && mountpoint -q "$mnt"; then
    umount "$mnt" 2>/dev/null || { sleep 1; umount "$mnt" 2>/dev/null; } || umount -l "$mnt"
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ snapctl
. "$root/bench/lib.sh"
bench_snapctl
state=$work/state
plugins=$("$snapctl" --state-dir "$state" plugins 2>/dev/null || true)
grep -q '^dd ' <<<"$plugins" ||
  die "$snapctl has no dd backend (snapctl plugins does not list it)"

# ------------------------------------------------------------------ helpers
now_us() { local t=$EPOCHREALTIME; printf '%s' "${t/./}"; }
alloc_bytes() { local b; b=$(stat -c '%b * %B' "$1"); printf '%s' $((b)); }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
warm_tools() {
  "$snapctl" --state-dir "$work/warm-state" plugins >/dev/null 2>&1 || true
  cp --version >/dev/null; dd --version >/dev/null; sync --version >/dev/null
  if command -v qemu-img >/dev/null; then qemu-img --version >/dev/null; fi
}
# Before every timed run: nothing dirty, and the source either out of the
# page cache (cold) or entirely in it (warm).
prep_cache() {
  local mode=$1; shift
  sync
  if [ "$mode" = cold ]; then
    echo 3 >/proc/sys/vm/drop_caches
    # Cold means the IMAGE is not cached; the programs compared are loaded
    # again, as on a host that uses them (every tool alike).
    warm_tools
  else
    local f; for f; do cat "$f" >/dev/null; done
  fi
}
sec() { [ -n "${1:-}" ] && awk -v u="$1" 'BEGIN { printf "%.4f", u / 1e6 }' || printf -- '-'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

# Results, keyed "image|cache|tool": space-separated microseconds.
declare -A T_ALL T_NOSYNC ALLOC METHOD COPY_US SIZE_OK SRC_ALLOC
record() { # key total_us nosync_us alloc_bytes [method] [copy_us]
  local k=$1
  T_ALL[$k]="${T_ALL[$k]:-} $2"
  [ -n "$3" ] && T_NOSYNC[$k]="${T_NOSYNC[$k]:-} $3"
  ALLOC[$k]=$4
  [ -n "${5:-}" ] && METHOD[$k]=$5
  [ -n "${6:-}" ] && COPY_US[$k]="${COPY_US[$k]:-} $6"
  return 0
}
med_of() { local v=${T_ALL[$1]:-}; [ -n "$v" ] && median $v || true; }
med_nosync() { local v=${T_NOSYNC[$1]:-}; [ -n "$v" ] && median $v || true; }
min_of() { local v=${T_ALL[$1]:-}; [ -n "$v" ] && minimum $v || true; }
med_copy() { local v=${COPY_US[$1]:-}; [ -n "$v" ] && median $v || true; }

# The dd backend logs "<what>: 4.0 GiB of data by copy_file_range in 3.2 s"
# at info level (shown with -v): the method it took and its own copy time.
parse_copy_log() { # log -> "method seconds"
  sed -nE 's/.* of data by (reflink|copy_file_range|read\/write|nothing to copy) in ([0-9.]+) s.*/\1 \2/p' "$1" |
    tail -1 | sed 's/nothing to copy/nothing/'
}
snap_file() { # domain name -> the dd copy's path, from the snapshot's backend data
  "$snapctl" --state-dir "$state" info "$1" "$2" | sed -nE 's/.*"file":"([^"]+)".*/\1/p' | head -1
}
snap() { "$snapctl" --state-dir "$state" --progress none "$@"; }

# ------------------------------------------------------------------- images
gen_dense() { # path: the random 64 MiB block repeated
  local i n=$((size / blk)) rem=$((size % blk))
  : >"$1"
  for ((i = 0; i < n; i++)); do cat "$work/rand64" >>"$1"; done
  (( rem == 0 )) || head -c "$rem" "$work/rand64" >>"$1"
}
gen_sparse() { # path: 10% of the 4 MiB blocks, random but reproducible places
  local n=$((size / chunk)) k idx j=0
  k=$(( (n + 5) / 10 )); (( k >= 1 )) || k=1
  truncate -s "$size" "$1"
  for idx in $(shuf -i 0-$((n - 1)) -n "$k" \
                 --random-source=<(openssl enc -aes-256-ctr -pass pass:vmsnap-bench -nosalt -pbkdf2 </dev/zero 2>/dev/null || yes vmsnap-bench) | sort -n); do
    dd if="$work/rand64" of="$1" bs="$chunk" skip=$((j % 16)) seek="$idx" count=1 conv=notrunc status=none
    j=$((j + 1))
  done
}

declare -A IMG
images=(dense 10%-sparse all-hole)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "work dir $work, image size $(numfmt --to=iec "$size"), $runs runs per row, snapctl $snapctl"
head -c "$blk" /dev/urandom >"$work/rand64"
mkdir -p "$work/img"
IMG[dense]=$work/img/dense.img
IMG[10%-sparse]=$work/img/sparse.img
IMG[all-hole]=$work/img/hole.img
log "generating images"
gen_dense "${IMG[dense]}"
gen_sparse "${IMG[10%-sparse]}"
truncate -s "$size" "${IMG[all-hole]}"
sync
for img in "${images[@]}"; do SRC_ALLOC[$img]=$(alloc_bytes "${IMG[$img]}"); done

# ------------------------------------------------------- timed operations
tools=("cp --sparse=always" "dd bs=1M conv=sparse" "dd bs=1M" "qemu-img convert")
(( have_qemu )) || tools=("${tools[@]:0:3}")

run_tool() { # tool src dst
  case $1 in
    "cp --sparse=always") cp --sparse=always "$2" "$3" ;;
    "cp --reflink=always") cp --reflink=always "$2" "$3" ;;
    "dd bs=1M conv=sparse") dd if="$2" of="$3" bs=1M conv=sparse status=none ;;
    "dd bs=1M") dd if="$2" of="$3" bs=1M status=none ;;
    "qemu-img convert") qemu-img convert -f raw -O raw "$2" "$3" ;;
    *) die "unknown tool $1" ;;
  esac
}

# One tool, N runs: time of the tool alone, and until its output is on disk
# (`sync FILE` = fsync, what vmsnap does before it reports success).
bench_tool() { # key tool src cache outdir
  local key=$1 tool=$2 src=$3 cache=$4 out=$5/bench-out.raw r t0 t1 t2
  for ((r = 1; r <= runs; r++)); do
    rm -f "$out"
    prep_cache "$cache" "$src"
    t0=$(now_us)
    run_tool "$tool" "$src" "$out"
    t1=$(now_us)
    sync "$out"
    t2=$(now_us)
    [ "$(stat -c %s "$out")" = "$(stat -c %s "$src")" ] || SIZE_OK[$key]=no
    record "$key" $((t2 - t0)) $((t1 - t0)) "$(alloc_bytes "$out")"
    log "$key run $r/$runs: $(sec $((t2 - t0))) s ($(sec $((t1 - t0))) s before fsync)"
  done
  rm -f "$out"
}

# vmsnap's own state of the domain (a few KiB of metadata), read into the
# page cache after a cold drop: on a host that uses vmsnap it is as cached
# as its executables are (warm_tools). Files only: the disk and the
# snapshots' copies stay cold, as cp's source does.
warm_state() { # domain
  local d=$state/domains/$1
  cat "$d/domain.json" "$d/journal" "$d/snapshots/"*.json >/dev/null 2>&1 || true
  readlink "$d/snapshots/.current" >/dev/null || true
}

# snapctl create with a fresh name per run; the delete is not timed.
bench_create() { # key domain src cache
  local key=$1 dom=$2 src=$3 cache=$4 r t0 t1 name f m c
  for ((r = 1; r <= runs; r++)); do
    name=bench-$cache-$r-$RANDOM
    prep_cache "$cache" "$src"
    warm_state "$dom"
    t0=$(now_us)
    snap -v create "$dom" --name "$name" --disk "vda=$src,format=raw" >/dev/null 2>"$work/op.log" ||
      { cat "$work/op.log" >&2; die "snapctl create failed"; }
    t1=$(now_us)
    read -r m c < <(parse_copy_log "$work/op.log"; echo) || true
    f=$(snap_file "$dom" "$name")
    [ -n "$f" ] && [ "$(stat -c %s "$f")" = "$(stat -c %s "$src")" ] || SIZE_OK[$key]=no
    record "$key" $((t1 - t0)) "" "$( [ -n "$f" ] && alloc_bytes "$f" || echo 0)" \
      "${m:-?}" "$( [ -n "${c:-}" ] && awk -v s="$c" 'BEGIN { printf "%d", s * 1e6 }')"
    log "$key run $r/$runs: $(sec $((t1 - t0))) s (${m:-?}, copy ${c:-?} s)"
    snap delete "$dom" "$name" >/dev/null 2>"$work/op.log" ||
      { cat "$work/op.log" >&2; die "snapctl delete failed"; }
  done
}

# snapctl revert to the domain's base snapshot; the disk is replaced by a
# fresh copy each time (the snapshot is kept).
bench_revert() { # key domain src cache
  local key=$1 dom=$2 src=$3 cache=$4 r t0 t1 base m c
  base=$(snap_file "$dom" base)
  for ((r = 1; r <= runs; r++)); do
    prep_cache "$cache" "$base"
    warm_state "$dom"
    t0=$(now_us)
    snap -v revert "$dom" base >/dev/null 2>"$work/op.log" ||
      { cat "$work/op.log" >&2; die "snapctl revert failed"; }
    t1=$(now_us)
    read -r m c < <(parse_copy_log "$work/op.log"; echo) || true
    [ "$(stat -c %s "$src")" = "$(stat -c %s "$base")" ] || SIZE_OK[$key]=no
    record "$key" $((t1 - t0)) "" "$(alloc_bytes "$src")" "${m:-?}" \
      "$( [ -n "${c:-}" ] && awk -v s="$c" 'BEGIN { printf "%d", s * 1e6 }')"
    log "$key run $r/$runs: $(sec $((t1 - t0))) s (${m:-?}, copy ${c:-?} s)"
  done
}

# ---------------------------------------------- fixed cost of snapctl itself
log "fixed overhead: $tiny_runs runs of snapctl on a 1 MiB image"
mkdir -p "$work/tiny"
tiny=$work/tiny/tiny.img
head -c "$MiB" "$work/rand64" >"$tiny"
declare -a ov_version ov_plugins ov_create ov_copy ov_delete
for ((r = 0; r < tiny_runs; r++)); do
  t0=$(now_us); "$snapctl" --version >/dev/null; t1=$(now_us)
  ov_version+=($((t1 - t0)))
  t0=$(now_us); "$snapctl" --state-dir "$state" plugins >/dev/null 2>&1; t1=$(now_us)
  ov_plugins+=($((t1 - t0)))
  t0=$(now_us)
  snap -v create tiny --name "t$r" --disk "vda=$tiny,format=raw" >/dev/null 2>"$work/op.log" ||
    { cat "$work/op.log" >&2; die "snapctl create of the tiny image failed"; }
  t1=$(now_us)
  ov_create+=($((t1 - t0)))
  read -r m c < <(parse_copy_log "$work/op.log"; echo) || true
  [ -n "${c:-}" ] && ov_copy+=("$(awk -v s="$c" 'BEGIN { printf "%d", s * 1e6 }')")
  t0=$(now_us); snap delete tiny "t$r" >/dev/null 2>&1; t1=$(now_us)
  ov_delete+=($((t1 - t0)))
done
# The same with 50 snapshots already recorded: what grows with the history.
hist=50
log "fixed overhead with $hist existing snapshots"
for ((r = 0; r < hist; r++)); do
  snap create tiny --name "h$r" >/dev/null 2>"$work/op.log" ||
    { cat "$work/op.log" >&2; die "snapctl create of the tiny image failed"; }
done
declare -a ov_create_h ov_list_h
for ((r = 0; r < tiny_runs; r++)); do
  t0=$(now_us); snap create tiny --name "u$r" >/dev/null 2>&1; t1=$(now_us)
  ov_create_h+=($((t1 - t0)))
  snap delete tiny "u$r" >/dev/null 2>&1
  t0=$(now_us); snap list tiny >/dev/null 2>&1; t1=$(now_us)
  ov_list_h+=($((t1 - t0)))
done
fsyncs="-"
if command -v strace >/dev/null; then
  if strace -f -qq -c -o "$work/strace.txt" -e trace=fsync,fdatasync,syncfs,sync \
       "$snapctl" --state-dir "$state" --progress none create tiny --name tstrace >/dev/null 2>&1; then
    fsyncs=$(awk '$NF ~ /^(fsync|fdatasync|syncfs|sync)$/ { n += $4 } END { print n + 0 }' "$work/strace.txt")
  fi
  snap delete tiny tstrace >/dev/null 2>&1 || true
fi

# ------------------------------------------------------- ext4 (the work fs)
fs_type=$(findmnt -n -o FSTYPE -T "$work" 2>/dev/null || stat -f -c %T "$work")
for img in "${images[@]}"; do
  src=${IMG[$img]}
  dom=bench-${img//%/pct}
  caches=(cold warm)
  [ "$img" = all-hole ] && caches=(cold) # no data to cache: warm = cold
  log "$img: base snapshot (not timed)"
  snap create "$dom" --name base --disk "vda=$src,format=raw" >/dev/null
  for cache in "${caches[@]}"; do
    bench_create "$img|$cache|vmsnap create" "$dom" "$src" "$cache"
    for tool in "${tools[@]}"; do
      bench_tool "$img|$cache|$tool" "$tool" "$src" "$cache" "$work/img"
    done
  done
  for cache in "${caches[@]}"; do
    bench_revert "$img|$cache|vmsnap revert" "$dom" "$src" "$cache"
  done
  snap delete "$dom" base >/dev/null
done

# --------------------------------------------------------- loop-mounted btrfs
btrfs_ok=0
if (( do_btrfs )); then
  rm -f "${IMG[dense]}" "${IMG[10%-sparse]}" "${IMG[all-hole]}"
  log "btrfs: making a $(numfmt --to=iec $((size * 3 / 2 + (1 << 30)))) file-backed filesystem"
  truncate -s $((size * 3 / 2 + (1 << 30))) "$work/btrfs.fs"
  if mkfs.btrfs -q -f "$work/btrfs.fs" >"$work/mkfs.log" 2>&1 &&
     mkdir -p "$work/btrfs" && mount -o loop "$work/btrfs.fs" "$work/btrfs"; then
    mnt=$work/btrfs
    btrfs_ok=1
  else
    cat "$work/mkfs.log" >&2
    log "btrfs: cannot make or mount the filesystem: skipping the btrfs part"
  fi
fi
if (( btrfs_ok )); then
  bsrc=$mnt/dense.img
  log "btrfs: writing the dense image"
  gen_dense "$bsrc"
  sync
  snap create bench-btrfs --name base --disk "vda=$bsrc,format=raw" >/dev/null
  for cache in cold warm; do
    bench_create "btrfs dense|$cache|vmsnap create" bench-btrfs "$bsrc" "$cache"
    bench_tool "btrfs dense|$cache|cp --reflink=always" "cp --reflink=always" "$bsrc" "$cache" "$mnt"
  done
  for cache in cold warm; do
    bench_revert "btrfs dense|$cache|vmsnap revert" bench-btrfs "$bsrc" "$cache"
  done
  snap delete bench-btrfs base >/dev/null
fi

# ===================================================================== report
line() { printf '%s\n' "------------------------------------------------------------------------------------------------------------------------"; }
row_fmt='%-11s %-5s %-22s %9s %9s %9s %9s  %-15s %9s %9s\n'
print_rows() { # image cache tool...
  local img=$1 cache=$2; shift 2
  local c_med r_med tool k med ns mn al meth cr rr
  c_med=$(med_of "$img|$cache|vmsnap create")
  r_med=$(med_of "$img|$cache|vmsnap revert")
  for tool in "vmsnap create" "vmsnap revert" "$@"; do
    k="$img|$cache|$tool"
    [ -n "${T_ALL[$k]:-}" ] || continue
    med=$(med_of "$k"); ns=$(med_nosync "$k"); mn=$(min_of "$k")
    al=$(mib "${ALLOC[$k]:-0}")
    meth=${METHOD[$k]:-}
    [ "${SIZE_OK[$k]:-}" = no ] && meth="${meth:+$meth }SIZE!"
    if [[ $tool == vmsnap* ]]; then
      cr="-"; rr="-"
      meth="${meth} $(sec "$(med_copy "$k")")s"
    else
      cr=$(ratio "$c_med" "$med"); rr=$(ratio "$r_med" "$med")
    fi
    printf "$row_fmt" "$img" "$cache" "$tool" "$(sec "$med")" "$(sec "$mn")" \
      "$( [ -n "$ns" ] && sec "$ns" || echo '-')" "$al" "${meth:--}" "$cr" "$rr"
  done
}

echo
echo "vmsnap dd backend vs. the usual tools — $(date -Is), $(uname -r), $(nproc) CPUs, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
echo "snapctl: $snapctl"
echo "images: $(numfmt --to=iec "$size") each, on $fs_type ($work); $runs runs per row"
echo "time = MEDIAN wall clock of $runs runs (min = fastest run). Tools are timed until their output is"
echo "fsync'ed ('sync FILE'), as vmsnap fsyncs its copy before it reports success; 'no-fsync' is the tool alone."
echo "cold: 'sync; echo 3 > /proc/sys/vm/drop_caches' before every run, then each tool's program loaded once (--version) so the image, not the executable, is what is cold; warm: source read into the page cache first."
echo "alloc = MiB allocated by the result (holes kept?); method/copy = what the dd backend used, and its own"
echo "copy time as it logs it. ratio = vmsnap median / tool median (<1.00x: vmsnap faster)."
echo
printf "$row_fmt" IMAGE CACHE TOOL "TIME s" "MIN s" "NO-FSYNC" "ALLOC MiB" "METHOD/COPY" "CREATE/T" "REVERT/T"
line
for img in "${images[@]}"; do
  printf 'source %-11s: %s MiB allocated of %s MiB\n' "$img" "$(mib "${SRC_ALLOC[$img]:-0}")" "$(mib "$size")"
done
line
for img in "${images[@]}"; do
  for cache in cold warm; do
    [ -n "${T_ALL[$img|$cache|vmsnap create]:-}" ] || continue
    print_rows "$img" "$cache" "${tools[@]}"
  done
  line
done
if (( btrfs_ok )); then
  for cache in cold warm; do
    print_rows "btrfs dense" "$cache" "cp --reflink=always"
  done
  line
fi

echo
echo "vmsnap fixed cost (1 MiB image, warm, median of $tiny_runs):"
printf '  %-44s %8s ms\n' "snapctl --version (process start)" "$(msec "$(median "${ov_version[@]}")")"
printf '  %-44s %8s ms\n' "snapctl plugins (+ library and plugin load)" "$(msec "$(median "${ov_plugins[@]}")")"
printf '  %-44s %8s ms\n' "snapctl create, 1 MiB image (total)" "$(msec "$(median "${ov_create[@]}")")"
if [ "${#ov_copy[@]}" -gt 0 ]; then
  oc=$(median "${ov_copy[@]}")
  printf '  %-44s %8s ms\n' "  of which the dd copy of 1 MiB (+ its fsync)" "$(msec "$oc")"
  printf '  %-44s %8s ms\n' "  fixed cost (total - copy)" "$(msec $(( $(median "${ov_create[@]}") - oc )))"
fi
printf '  %-44s %8s\n' "  fsync-family calls in one create (strace)" "$fsyncs"
printf '  %-44s %8s ms\n' "snapctl delete of it" "$(msec "$(median "${ov_delete[@]}")")"
printf '  %-44s %8s ms\n' "snapctl create, with $hist snapshots recorded" "$(msec "$(median "${ov_create_h[@]}")")"
printf '  %-44s %8s ms\n' "snapctl list, with $hist snapshots recorded" "$(msec "$(median "${ov_list_h[@]}")")"

# ------------------------------------------------------------------ targets
echo
echo "targets: the verdict is on the COLD MEDIANS (tools including their fsync); the same test on the"
echo "best (fastest) of the $runs runs and on the warm medians follows in [brackets], to tell noise from a real miss."
verdict() { if [ "$1" = 1 ]; then echo PASS; else echo '*** MISS ***'; fi; }
stat_of() { if [ "$1" = best ]; then min_of "$2"; else med_of "$2"; fi; }

# 1. dense: create <= 1.1 x cp
t1_check() { # cache stat -> prints "ok detail"
  local c t ok=0
  c=$(stat_of "$2" "dense|$1|vmsnap create"); t=$(stat_of "$2" "dense|$1|cp --sparse=always")
  [ -n "$c" ] && [ -n "$t" ] && le "$c" "$(awk -v t="$t" 'BEGIN { print t * 1.1 }')" && ok=1
  printf '%s vmsnap %s s vs cp %s s = %s' "$ok" "$(sec "$c")" "$(sec "$t")" "$(ratio "$c" "$t")"
}
# 2. sparse and all-hole: create <= the fastest tool
t2_check() { # cache stat
  local ok=1 img c t best best_tool tool detail=""
  for img in 10%-sparse all-hole; do
    [ "$img" = all-hole ] && [ "$1" = warm ] && continue # measured cold only
    c=$(stat_of "$2" "$img|$1|vmsnap create"); best=""; best_tool=""
    for tool in "${tools[@]}"; do
      t=$(stat_of "$2" "$img|$1|$tool")
      if [ -n "$t" ] && { [ -z "$best" ] || (( t < best )); }; then best=$t; best_tool=$tool; fi
    done
    if [ -z "$c" ] || [ -z "$best" ] || ! le "$c" "$best"; then ok=0; fi
    detail+="$img: vmsnap $(sec "$c") s vs $best_tool $(sec "$best") s = $(ratio "$c" "$best"), "
  done
  printf '%s %s' "$ok" "${detail%, }"
}
# 3. btrfs: create < 20 ms end to end
t3_check() { # cache stat
  local c ok=0
  c=$(stat_of "$2" "btrfs dense|$1|vmsnap create")
  [ -n "$c" ] && (( c < 20000 )) && ok=1
  printf '%s vmsnap %s ms (its reflink %s ms), cp --reflink %s ms' "$ok" "$(msec "$c")" \
    "$(msec "$(med_copy "btrfs dense|$1|vmsnap create")")" "$(msec "$(stat_of "$2" "btrfs dense|$1|cp --reflink=always")")"
}
report_target() { # label check_fn
  local label=$1 fn=$2 main others="" r ok detail combo
  main=$($fn cold median)
  for combo in "cold best" "warm median"; do
    r=$($fn $combo)
    ok=${r%% *}; detail=${r#* }
    others+="; ${combo/best/best-of-$runs}: ${detail} $( [ "$ok" = 1 ] && echo PASS || echo MISS)"
  done
  printf '  %-70s %s\n      cold median: %s\n      [%s]\n' "$label" "$(verdict "${main%% *}")" "${main#* }" "${others#; }"
}
report_target "dense: vmsnap create within 1.1x of cp (target)" t1_check
report_target "10%-sparse and all-hole: vmsnap at least as fast as the fastest tool" t2_check
if (( btrfs_ok )); then
  report_target "btrfs reflink: vmsnap create < 20 ms for $(numfmt --to=iec "$size")" t3_check
else
  printf '  %-70s %s\n' "btrfs reflink: vmsnap create < 20 ms" "not measured (no btrfs)"
fi
echo "load average: $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (the benchmark itself adds ~1)."
if awk -v l="${load_start%% *}" 'BEGIN { exit !(l > 0.5) }'; then
  echo "WARNING: the machine was not idle when the benchmark started: other processes' I/O skews these numbers;"
  echo "         trust MIN s more than TIME s, and rerun on an idle machine before concluding."
fi

# -------------------------------------------------------------- observations
echo
echo "observations:"
obs=0
note() { printf '  - %s\n' "$*"; obs=1; }
for k in "${!METHOD[@]}"; do
  img=${k%%|*}
  m=${METHOD[$k]}
  if [[ $img == btrfs* ]] && [ "$m" != reflink ]; then
    note "$k: the dd backend used $m, not reflink, on btrfs"
  fi
  if [[ $img != btrfs* ]] && [ "$m" = read/write ]; then
    note "$k: the dd backend fell back to read/write instead of copy_file_range"
  fi
  if [[ $img != btrfs* && $img != dense ]]; then
    src_alloc=${SRC_ALLOC[$img]:-0}
    if (( ${ALLOC[$k]:-0} > src_alloc + 4 * MiB )); then
      note "$k: holes not preserved: $(mib "${ALLOC[$k]}") MiB allocated for $(mib "$src_alloc") MiB of data"
    fi
  fi
done
for k in "${!SIZE_OK[@]}"; do note "$k: an output's size differed from its source's"; done
for img in "${images[@]}" "btrfs dense"; do
  for cache in cold warm; do
    c=$(med_of "$img|$cache|vmsnap create"); r=$(med_of "$img|$cache|vmsnap revert")
    [ -n "$c" ] && [ -n "$r" ] || continue
    if awk -v c="$c" -v r="$r" 'BEGIN { exit !(r > c * 1.2 && r - c > 20000) }'; then
      note "$img $cache: vmsnap revert $(sec "$r") s vs create $(sec "$c") s ($(ratio "$r" "$c"));" \
        "revert copies into a staging file then renames it over the disk, so the old disk's blocks are freed inside the revert"
    fi
  done
done
(( obs )) || echo "  (none)"
echo
log "done"
exit 0
