# lib.sh — shared helpers of the integration tests (source it, don't run it).
#
#   . "$(dirname "$0")/lib.sh"
#   it_init test-name          # checks the environment, makes $T, $ST, traps
#
# Environment (set by ctest): SNAPCTL (the build tree's snapctl), BUILD_DIR,
# SOURCE_DIR, PLUGIN_BUILD_DIR. Run by hand:
#   SNAPCTL=/b/bin/snapctl BUILD_DIR=/b SOURCE_DIR=/src \
#     PLUGIN_BUILD_DIR=/b/lib/vmsnap/plugins bash tests/integration/test-X.sh
#
# Conventions: every test has its own temporary dir $T and state dir $ST
# (never the default state dir); everything it mounts, attaches or starts is
# registered with it_on_cleanup and undone by the EXIT trap, failure or not;
# a failure prints one "FAIL: ..." line and exits non-zero. A missing tool is
# a failure, never a skip.
set -euo pipefail
set -E
shopt -s nullglob

IT_NAME=${IT_NAME:-$(basename "$0" .sh)}
IT_CLEANUP=()

# To stderr: a fail inside $(...) must still be seen.
fail() {
  echo "FAIL: $IT_NAME: $*" >&2
  exit 1
}

# note TEXT: reports a group of checks as passed (or, if a soft check in it
# failed since the last note, as failed).
IT_NOTED_FAILS=0
note() {
  if [ "${IT_SOFT_FAILED:-0}" != "$IT_NOTED_FAILS" ]; then
    echo "not ok: $* (see the FAIL lines above)"
    IT_NOTED_FAILS=$IT_SOFT_FAILED
  else
    echo "ok: $*"
  fi
}

# soft CMD ARGS...: runs one check in a subshell; if it fails (its FAIL line
# is printed), the test goes on with the next checks and it_done fails it at
# the end. For checks whose failure does not invalidate what follows.
IT_SOFT_FAILED=0
soft() {
  if ! ("$@"); then
    IT_SOFT_FAILED=$((IT_SOFT_FAILED + 1))
  fi
}

# it_done: the last line of a test.
it_done() {
  [ "$IT_SOFT_FAILED" = 0 ] || fail "$IT_SOFT_FAILED check(s) failed, see the FAIL lines above"
  echo "PASS: $IT_NAME"
}

it_on_cleanup() { IT_CLEANUP+=("$*"); }

it_cleanup() {
  local rc=$? i
  trap - ERR
  set +e
  for ((i = ${#IT_CLEANUP[@]} - 1; i >= 0; i--)); do
    eval "${IT_CLEANUP[i]}" >/dev/null 2>&1
  done
  if [ -n "${T:-}" ] && [ -d "$T" ]; then
    # Never follow into something still mounted.
    if ! grep -q " $T/" /proc/mounts; then
      chattr -R -i "$T" >/dev/null 2>&1
      rm -rf "$T"
    else
      echo "warning: $T still has mounts; left in place" >&2
    fi
  fi
  exit $rc
}

need_tool() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || fail "required tool '$t' is not installed (this test never skips)"
  done
}

it_init() {
  IT_NAME=${1:-$IT_NAME}
  [ "$(id -u)" = 0 ] || fail "integration tests run as root (loop devices, mounts, chattr)"
  if [ -z "${SNAPCTL:-}" ] && [ -n "${BUILD_DIR:-}" ]; then SNAPCTL=$BUILD_DIR/bin/snapctl; fi
  : "${SNAPCTL:?set SNAPCTL to the snapctl of a build tree, as ctest does}"
  [ -x "$SNAPCTL" ] || fail "SNAPCTL=$SNAPCTL is not an executable"
  BUILD_DIR=${BUILD_DIR:-$(cd "$(dirname "$SNAPCTL")/.." && pwd)}
  SOURCE_DIR=${SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
  PLUGIN_BUILD_DIR=${PLUGIN_BUILD_DIR:-$BUILD_DIR/lib/vmsnap/plugins}
  [ -f "$PLUGIN_BUILD_DIR/dd.so" ] || fail "no dd plugin at $PLUGIN_BUILD_DIR/dd.so"
  need_tool stat truncate dd openssl python3 losetup mount umount
  # Nothing from the caller's environment may steer snapctl.
  unset VMSNAP_PLUGIN_PATH VMSNAP_STATE_DIR VMSNAP_CRASHPOINT
  umask 022
  T=$(mktemp -d "${TMPDIR:-/tmp}/vmsnap-it-$IT_NAME.XXXXXX")
  ST=$T/state
  OUT=$T/.out
  ERR=$T/.err
  trap it_cleanup EXIT
  # Killed by ctest's timeout or Ctrl-C: still clean up (through EXIT).
  trap 'echo "FAIL: $IT_NAME: interrupted" >&2; exit 130' INT
  trap 'echo "FAIL: $IT_NAME: terminated" >&2; exit 143' TERM HUP
  # shellcheck disable=SC2154 # rc is assigned inside the trap string
  trap 'rc=$?; echo "FAIL: $IT_NAME: line $LINENO: \"$BASH_COMMAND\" exited with $rc" >&2; exit $rc' ERR
  echo "== $IT_NAME: snapctl $SNAPCTL, scratch $T"
}

# ---- running snapctl ------------------------------------------------------
# sc ARGS...: runs snapctl with this test's state and plugin dirs; stdout in
# $OUT, stderr in $ERR, exit status in $RC. Never fails by itself.
sc() {
  RC=0
  "$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" --progress none "$@" \
    >"$OUT" 2>"$ERR" || RC=$?
}

show_output() {
  {
    echo "--- snapctl stdout:"; cat "$OUT" 2>/dev/null || true
    echo "--- snapctl stderr:"; cat "$ERR" 2>/dev/null || true
  } >&2
}

# expect CODE DESCRIPTION -- ARGS...: sc ARGS, and the exit status must be CODE.
expect() {
  local want=$1 what=$2
  shift 2
  [ "$1" = -- ] && shift
  sc "$@"
  if [ "$RC" != "$want" ]; then
    show_output
    fail "$what: 'snapctl $*' exited $RC, expected $want"
  fi
}

ok() { expect 0 "$1" -- "${@:2}"; }

# err_has REGEX DESCRIPTION: the last command's stderr matches (grep -E, any case).
err_has() {
  grep -Eqi -- "$1" "$ERR" || { show_output; fail "$2: stderr does not match /$1/"; }
}
out_has() {
  grep -Eqi -- "$1" "$OUT" || { show_output; fail "$2: stdout does not match /$1/"; }
}

# ---- files ------------------------------------------------------------------
# SHA-256 of a file or device (openssl: several times faster than sha256sum here).
sha() {
  local h
  h=$(openssl dgst -sha256 -r "$1") || fail "cannot checksum $1"
  echo "${h%% *}"
}

# Allocated bytes of a file (its blocks, not its apparent size).
alloc() { echo $(($(stat -L -c %b "$1") * $(stat -L -c %B "$1"))); }

mode_of() { stat -c %a "$1"; }

# prng BYTES SEED: deterministic pseudo-random bytes on stdout, fast.
prng() {
  head -c "$1" /dev/zero | openssl enc -aes-128-ctr -pass "pass:$2" -nosalt -pbkdf2 2>/dev/null
}

# make_dense FILE MIB [SEED]: a file of MIB MiB of random data.
make_dense() {
  prng "$(($2 << 20))" "${3:-$1}" >"$1"
  [ "$(stat -c %s "$1")" = $(($2 << 20)) ] || fail "could not write $2 MiB into $1"
}

# make_sparse FILE MIB PERCENT [SEED]: a sparse file of MIB MiB with random
# 64 KiB blocks at spread, irregular offsets covering about PERCENT % of it.
make_sparse() {
  truncate -s "$(($2 << 20))" "$1"
  python3 - "$1" "$(($2 << 20))" "$3" "${4:-$1}" <<'EOF'
import os, random, sys
path, size, pct, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rnd = random.Random(seed)
blk = 64 << 10
nblocks = size // blk
want = nblocks * pct // 100
chosen = sorted(rnd.sample(range(nblocks), want))
with open(path, "r+b") as f:
    for b in chosen:
        f.seek(b * blk)
        f.write(rnd.randbytes(blk))
EOF
}

# scribble FILE OFFSET_MIB MIB [SEED]: overwrites MIB MiB at OFFSET_MIB in place.
scribble() {
  prng "$(($3 << 20))" "${4:-scribble$2$3}" |
    dd of="$1" bs=1M seek="$2" conv=notrunc status=none
}

# within A B TOLERANCE: |A-B| <= TOLERANCE
within() {
  local d=$(($1 - $2))
  [ "${d#-}" -le "$3" ]
}

# The dd backend's files for a file disk (see plugins/dd/dd.h).
dd_dir() { echo "$(dirname "$(realpath "$1")")/.vmsnap/$(basename "$1")"; }
dd_file() { echo "$(dd_dir "$1")/vmsnap-$2.raw"; }

# leftovers DIR...: prints any in-progress or staging file of the dd backend
# (.part, .vmsnap-revert) under DIRs.
leftovers() {
  find "$@" \( -name '*.part-*' -o -name '*.part' -o -name '*.vmsnap-revert-*' \) -print 2>/dev/null || true
}

assert_no_leftovers() {
  local l
  l=$(leftovers "$@")
  [ -z "$l" ] || fail "$(echo "$l" | tr '\n' ' ')left behind"
}

journal() { echo "$ST/domains/$1/journal"; }

# journal_text DOMAIN: the pending journal of DOMAIN (its JSON), nothing
# when there is none. The file is two slots, each a 64-byte header
# "vmsnap-journal 1 SEQ LEN SUM" and LEN bytes of JSON; the record in
# force is the readable one with the higher SEQ, LEN 0 being a clear (the
# checksum is left to vmsnap: tests tear no writes).
journal_text() {
  python3 - "$(journal "$1")" <<'PY'
import json, sys
try:
    data = open(sys.argv[1], "rb").read()
except FileNotFoundError:
    sys.exit(0)
slot, best = len(data) // 2, None
for off in (0, slot):
    f = data[off:off + 64].split()
    if len(f) < 5 or f[0] != b"vmsnap-journal" or f[1] != b"1":
        continue
    seq, n = int(f[2], 16), int(f[3], 16)
    body = data[off + 64:off + 64 + n].decode()
    if n:
        json.loads(body)
    if best is None or seq > best[0]:
        best = (seq, body)
if best is None:
    sys.exit("unreadable journal " + sys.argv[1])
print(best[1], end="")
PY
}

has_journal() { [ -n "$(journal_text "$1")" ]; }

assert_no_journal() {
  local j
  j=$(journal_text "$1") || fail "$2: cannot read the journal of domain $1"
  [ -z "$j" ] || { echo "$j"; fail "$2: a journal of domain $1 left behind"; }
}

# names DOMAIN: the recorded snapshot names, space separated, in list order
# ("-" for none); current CURRENT: the current snapshot's name ("-" for none).
# no_domain DOM WHAT: a refused or undone first create left no trace of DOM.
no_domain() {
  [ ! -e "$ST/domains/$1" ] || fail "$2: left $(find "$ST/domains/$1" | tr '\n' ' ')"
  expect 3 "$2: list of the domain" -- list "$1"
}
names() {
  sc --json list "$1"
  [ "$RC" = 0 ] || { show_output; fail "snapctl --json list $1 exited $RC"; }
  python3 -c '
import json, sys
docs = json.load(open(sys.argv[1]))
n = [d["name"] for d in docs]
print(" ".join(n) if n else "-")' "$OUT"
}
current() {
  sc --json list "$1"
  [ "$RC" = 0 ] || { show_output; fail "snapctl --json list $1 exited $RC"; }
  python3 -c '
import json, sys
c = [d["name"] for d in json.load(open(sys.argv[1])) if d.get("current")]
print(c[0] if c else "-")' "$OUT"
}

assert_eq() {
  [ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
}

# ---- storage ------------------------------------------------------------------
# loop_attach IMG VAR: attaches IMG to a free loop device, sets VAR to it;
# detached at exit. (Not through $(...): the cleanup must be registered in
# this shell, not a subshell.)
loop_attach() {
  local _it_dev
  _it_dev=$(losetup -f --show "$1") || fail "losetup -f --show $1 failed"
  it_on_cleanup "losetup -d $_it_dev"
  printf -v "$2" %s "$_it_dev"
}

# mount_img IMG MNT [MOUNT OPTIONS]: loop-mounts IMG at MNT; unmounted and
# detached at exit.
mount_img() {
  local img=$1 mnt=$2 dev
  shift 2
  mkdir -p "$mnt"
  dev=$(losetup -f --show "$img") || fail "losetup -f --show $img failed"
  it_on_cleanup "losetup -d $dev"
  mount "$@" "$dev" "$mnt" || fail "mount $dev (from $img) on $mnt failed"
  it_on_cleanup "umount $mnt || umount -l $mnt"
}

# hold_image IMG: a qemu-io that holds the qcow2 IMG open (and locked) until
# `release_image`; HOLDER is its pid, fd 9 its stdin. Waits for its fd on
# IMG in /proc rather than probing with qemu-img: a probe's shared lock,
# taken while qemu-io opens, can make qemu-io's own open fail.
hold_image() {
  local img f
  img=$(readlink -f "$1")
  mkfifo "$T/holder.fifo"
  qemu-io -f qcow2 "$1" <"$T/holder.fifo" >"$T/holder.out" 2>&1 &
  HOLDER=$!
  it_on_cleanup "kill $HOLDER"
  exec 9>"$T/holder.fifo"
  for _ in $(seq 200); do
    for f in /proc/"$HOLDER"/fd/*; do
      [ "$(readlink "$f" 2>/dev/null)" = "$img" ] && return 0
    done
    sleep 0.05
  done
  cat "$T/holder.out" >&2
  fail "qemu-io did not open $img"
}
release_image() {
  echo quit >&9
  exec 9>&-
  wait "$HOLDER" || true
  rm -f "$T/holder.fifo"
}

# wait_for_copy TIMEOUT_S PID DIR [PATTERN]: waits until PID writes a copy
# into DIR, as the dd backend does: an unnamed file (O_TMPFILE) it holds
# open there, or a file matching PATTERN (its named temporary, where there
# is no O_TMPFILE). COPY_FILE is then a path to it (/proc/PID/fd/N for an
# unnamed one). Returns 1 when PID exits or TIMEOUT passes first.
wait_for_copy() {
  local deadline=$((SECONDS + $1)) pid=$2 dir pat=${4:-} f
  dir=$(readlink -m "$3") # it may not exist yet
  COPY_FILE=
  while [ $SECONDS -lt $deadline ]; do
    for f in /proc/"$pid"/fd/*; do
      case $(readlink "$f" 2>/dev/null) in
        "$dir"/\#*" (deleted)") COPY_FILE=$f; return 0 ;;
      esac
    done
    if [ -n "$pat" ]; then
      for f in $pat; do [ -e "$f" ] && { COPY_FILE=$f; return 0; }; done
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.01
  done
  return 1
}

# wait_for_glob TIMEOUT_S PID PATTERN: waits until a file matching PATTERN
# exists (returns 0), PID exits or TIMEOUT passes (returns 1).
wait_for_glob() {
  local deadline=$((SECONDS + $1)) pid=$2 pat=$3 f
  while [ $SECONDS -lt $deadline ]; do
    for f in $pat; do [ -e "$f" ] && return 0; done
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.01
  done
  return 1
}
