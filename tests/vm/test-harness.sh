#!/bin/bash
# test-harness.sh — run-in-guest.sh keeps its promises (runs on the host,
# boots the guest twice): the command's stdout, stderr and exit code come
# back apart; --env (with spaces, and a bare NAME from the host); the cwd
# and the repository at their host paths; test disks in order with their
# sizes and by-id names; nothing written to the root survives a run; and
# the harness's own exit codes: 123 (never started), 124 (did not end),
# 125 (usage, no image).
# Environment: VMSNAP_VM_IMAGE (the image dir), SOURCE_DIR.
set -euo pipefail
: "${VMSNAP_VM_IMAGE:?}" "${SOURCE_DIR:?}"
export VMSNAP_VM_IMAGE SOURCE_DIR
run=$SOURCE_DIR/tests/vm/run-in-guest.sh
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

fail() {
  echo "FAIL: vm/harness: $*" >&2
  exit 1
}
# expect_rc WANT WHAT -- ARGS...: run-in-guest.sh ARGS exits WANT; its
# stdout in $T/out, stderr in $T/err.
expect_rc() {
  local want=$1 what=$2 rc=0
  shift 3
  "$run" "$@" >"$T/out" 2>"$T/err" || rc=$?
  if [ "$rc" != "$want" ]; then
    echo "--- stdout:" >&2 && cat "$T/out" >&2
    echo "--- stderr:" >&2 && cat "$T/err" >&2
    fail "$what: exit $rc, expected $want"
  fi
}

# ---- one boot: what comes back, what the guest sees ------------------------------------------
cd "$SOURCE_DIR/tests"
export HOST_ONLY="from the host"
# shellcheck disable=SC2016 # expanded in the guest
expect_rc 7 "the command's exit code" -- --disk first:16 --disk second:32 \
  --env "SPACED=a  b" --env HOST_ONLY --env SOURCE_DIR -- bash -c '
  [ "$(pwd)" = "$SOURCE_DIR/tests" ] || { echo "cwd is $(pwd)"; exit 1; }
  [ -f "$SOURCE_DIR/tests/vm/lib.sh" ] || { echo "repository not at its host path"; exit 1; }
  [ "$SPACED" = "a  b" ] || { echo "SPACED=$SPACED"; exit 1; }
  [ "$HOST_ONLY" = "from the host" ] || { echo "HOST_ONLY=$HOST_ONLY"; exit 1; }
  [ "$(blockdev --getsize64 /dev/vdb)" = $((16 << 20)) ] || { echo "vdb is not the 16 MiB disk"; exit 1; }
  [ "$(blockdev --getsize64 /dev/vdc)" = $((32 << 20)) ] || { echo "vdc is not the 32 MiB disk"; exit 1; }
  [ "$(readlink -f /dev/disk/by-id/virtio-second)" = /dev/vdc ] || { echo "no by-id link"; exit 1; }
  touch /var/vmsnap-marker && sync
  echo "to stdout"; echo "to stderr" >&2; exit 7'
grep -qx "to stdout" "$T/out" || fail "stdout did not come back: $(cat "$T/out")"
grep -qx "to stderr" "$T/err" || fail "stderr did not come back"
grep -q "to stderr" "$T/out" && fail "stderr came back on stdout"
grep -q '^vm: boot to command' "$T/err" || fail "no timing line on stderr"
echo "ok: exit code, stdout and stderr apart, env, cwd, repository, disks in order ($(grep '^vm:' "$T/err"))"

# ---- a guest that dies under its command: 124; and the root starts clean ---------------------
# The marker the first boot wrote must be gone (snapshot=on), else exit 9.
expect_rc 124 "a guest that powers off under its command" -- -- bash -c '
  [ ! -e /var/vmsnap-marker ] || exit 9
  busybox poweroff -f'
grep -q 'the command did not end' "$T/err" || fail "124 without its message"
echo "ok: a guest dying under its command is 124; writes to the root do not survive a run"

# ---- the harness's own failures ----------------------------------------------------------------
expect_rc 123 "a boot that cannot finish in time" -- --timeout 2 -- true
grep -q 'never started the command' "$T/err" || fail "123 without its message"
grep -q 'last lines of the guest console' "$T/err" || fail "123 without the console log"
expect_rc 125 "no image" -- --image "$T/none" -- true
grep -q 'build-image.sh' "$T/err" || fail "125 does not say how to build the image"
expect_rc 125 "a bad --disk" -- --disk 'bad name:1' -- true
expect_rc 125 "no command" -- --disk a:1
echo "ok: exit codes 123 (never started), 124 (did not end), 125 (usage, no image)"
echo "PASS: vm/harness"
