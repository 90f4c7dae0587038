#!/bin/bash
# test-cancel.sh — Ctrl-C (SIGINT) and SIGTERM during a long copy.
#  create of a 1 GiB dense disk on the plain filesystem, SIGINT while it
#  copies: exit 5, no snapshot file, no .part file, no metadata, no journal;
#  the same with SIGTERM;
#  while a create runs (stopped), another create or delete gets exit 4 and
#  list works;
#  revert cancelled while it stages its copy: exit 5, the disk unchanged
#  (checksum), no staging file, no journal, the snapshot still usable.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
it_init test-cancel

SIZE_MIB=1024
disk=$T/vm.img
make_dense "$disk" $SIZE_MIB
sha0=$(sha "$disk")
sddir=$(dd_dir "$disk")

# start_bg ARGS...: snapctl ARGS in the background; its pid in $PID.
start_bg() {
  "$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" --progress none "$@" >"$OUT" 2>"$ERR" &
  PID=$!
  it_on_cleanup "kill -9 $PID"
}

# interrupt SIGNAL DIR PATTERN WHAT: once snapctl copies into DIR (an
# unnamed file, or one matching PATTERN: wait_for_copy), waits 0.1 s more
# and sends SIGNAL (a fast disk copies 1 GiB in well under a second); the
# exit status in $RC.
interrupt() {
  local sig=$1 dir=$2 pat=$3 what=$4
  if ! wait_for_copy 60 "$PID" "$dir" "$pat"; then
    RC=0
    wait "$PID" || RC=$?
    show_output
    fail "$what: no copy into $dir began (snapctl exited $RC): the copy was too quick to interrupt, or never started"
  fi
  sleep 0.1
  kill -0 "$PID" 2>/dev/null || { show_output; fail "$what: snapctl finished within 0.1 s of starting its copy; too fast to test cancelling"; }
  kill "-$sig" "$PID"
  RC=0
  wait "$PID" || RC=$?
}

# ---- create, SIGINT -------------------------------------------------------------
t0=$SECONDS
start_bg create dom --disk "vda=$disk" --name s1
interrupt INT "$sddir" "$sddir/.vmsnap-s1.raw.part-*" "create + SIGINT"
[ "$RC" = 5 ] || { show_output; fail "create cancelled by SIGINT exited $RC, expected 5"; }
err_has 'cancel' "the cancelled create says so"
[ ! -e "$(dd_file "$disk" s1)" ] || fail "cancelled create left the snapshot file $(dd_file "$disk" s1)"
assert_no_leftovers "$T"
[ -z "$(ls -A "$ST/domains/dom/snapshots" 2>/dev/null)" ] || fail "cancelled create left metadata: $(ls "$ST/domains/dom/snapshots")"
assert_no_journal dom "cancelled create"
no_domain dom "the cancelled first create"
assert_eq "$(sha "$disk")" "$sha0" "the disk after the cancelled create"
echo "create cancelled after $((SECONDS - t0)) s"
note "create cancelled by SIGINT: exit 5, nothing left"

# ---- create, SIGTERM ------------------------------------------------------------
start_bg create dom --disk "vda=$disk" --name s1
interrupt TERM "$sddir" "$sddir/.vmsnap-s1.raw.part-*" "create + SIGTERM"
[ "$RC" = 5 ] || { show_output; fail "create cancelled by SIGTERM exited $RC, expected 5"; }
[ ! -e "$(dd_file "$disk" s1)" ] || fail "cancelled create left the snapshot file"
assert_no_leftovers "$T"
assert_no_journal dom "create cancelled by SIGTERM"
no_domain dom "the first create cancelled by SIGTERM"
note "create cancelled by SIGTERM: exit 5, nothing left"

# ---- a second writer while one runs: busy (4); readers still work ---------------
start_bg create dom --disk "vda=$disk" --name s1
wait_for_copy 60 "$PID" "$sddir" "$sddir/.vmsnap-s1.raw.part-*" || { show_output; fail "locked domain: the copy never started"; }
kill -STOP "$PID"
it_on_cleanup "kill -CONT $PID"
OUT1=$OUT ERR1=$ERR
OUT=$T/.out2 ERR=$T/.err2
expect 4 "create while another create holds the domain" -- create dom --name other
err_has 'busy|lock' "the refusal says the domain is busy"
expect 4 "delete while a create holds the domain" -- delete dom s1
ok "list while a create holds the domain" list dom
OUT=$OUT1 ERR=$ERR1
kill -CONT "$PID"
kill -INT "$PID"
RC=0
wait "$PID" || RC=$?
[ "$RC" = 5 ] || { show_output; fail "create stopped, continued and cancelled exited $RC, expected 5"; }
assert_no_leftovers "$T"
assert_no_journal dom "create stopped, continued and cancelled"
no_domain dom "the cancelled first create"
note "a locked domain: writers get exit 4, readers go on"

# ---- revert, SIGINT while staging -------------------------------------------------
ok "create (to revert to)" create dom --disk "vda=$disk" --name s1
scribble "$disk" 0 8 x
scribble "$disk" 500 8 y
sha1=$(sha "$disk")
ino=$(stat -c %i "$disk")
start_bg revert dom s1
interrupt INT "$T" "$T/.vm.img.vmsnap-revert-*" "revert + SIGINT"
[ "$RC" = 5 ] || { show_output; fail "revert cancelled by SIGINT exited $RC, expected 5"; }
err_has 'cancel' "the cancelled revert says so"
assert_eq "$(stat -c %i "$disk")" "$ino" "the disk's inode after the cancelled revert (was it replaced?)"
assert_eq "$(sha "$disk")" "$sha1" "the disk after the cancelled revert"
assert_no_leftovers "$T"
assert_no_journal dom "cancelled revert"
assert_eq "$(names dom)" s1 "snapshots after the cancelled revert"
[ -f "$(dd_file "$disk" s1)" ] || fail "the cancelled revert removed the snapshot file"
note "revert cancelled while staging: exit 5, disk unchanged"

# The snapshot is still good: a revert that is left alone restores it.
ok "revert after the cancelled one" revert dom s1
assert_eq "$(sha "$disk")" "$sha0" "the disk after the uncancelled revert"
ok "delete" delete dom s1
assert_no_leftovers "$T"

it_done
