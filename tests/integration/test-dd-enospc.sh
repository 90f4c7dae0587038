#!/bin/bash
# test-dd-enospc.sh — the dd backend when space runs out.
#  1. A 40 MiB dense disk on a 64 MiB ext4 (no reflink): create is refused
#     up front with exit 6 and a message giving needed and free space;
#     nothing is left (no file, no metadata, no journal), the disk unchanged.
#  2. Same with file= on a tmpfs too small for the copy.
#  3. Space runs out DURING the copy: file= on a tmpfs with room at the
#     check; snapctl is stopped (SIGSTOP) as soon as its copy begins,
#     the tmpfs filled, snapctl continued: exit 6, no partial file, nothing
#     recorded.
#  4. Revert needs room for its staging copy beside the disk: refused with
#     exit 6, disk unchanged, no staging file.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
it_init test-dd-enospc
need_tool mkfs.ext4 fallocate

# ---- 1. up-front refusal on a small ext4 ---------------------------------------
truncate -s 64M "$T/small.img"
mkfs.ext4 -q -F "$T/small.img" >"$T/mkfs.log" 2>&1 || { cat "$T/mkfs.log"; fail "mkfs.ext4 failed"; }
small=$T/small
mount_img "$T/small.img" "$small"
disk=$small/d.img
make_dense "$disk" 40
sha0=$(sha "$disk")
expect 6 "create without room for the copy" -- create dom --disk "vda=$disk" --name s1
err_has 'needs [0-9.]+ (MiB|KiB)' "the message says how much is needed"
err_has '[0-9.]+ (MiB|KiB|bytes) free' "the message says how much is free"
err_has 'vda' "the message names the disk"
[ ! -e "$(dd_file "$disk" s1)" ] || fail "refused create left $(dd_file "$disk" s1)"
[ -z "$(ls -A "$ST/domains/dom/snapshots" 2>/dev/null)" ] || fail "refused create left metadata: $(ls "$ST/domains/dom/snapshots")"
assert_no_journal dom "refused create"
assert_no_leftovers "$small"
no_domain dom "the refused first create"
assert_eq "$(sha "$disk")" "$sha0" "the disk after the refused create"
note "create refused up front: exit 6 with needed/free"

# ---- 2. file= on a tmpfs that is too small -------------------------------------
tiny=$T/tiny
mkdir "$tiny"
mount -t tmpfs -o size=16m tmpfs "$tiny" || fail "mount tmpfs on $tiny failed"
it_on_cleanup "umount $tiny || umount -l $tiny"
expect 6 "create with file= on a 16 MiB tmpfs" -- create dom2 --disk "vda=$disk,file=$tiny/s.raw" --name s1
err_has 'needs [0-9.]+ MiB, [0-9.]+ (MiB|KiB|bytes) free' "needed vs free in the message"
[ -z "$(ls -A "$tiny")" ] || fail "refused create left $(ls -A "$tiny") in $tiny"
no_domain dom2 "the refused first create (file=)"
assert_no_journal dom2 "refused create (file=)"
note "create with a too-small file= destination refused: exit 6"

# ---- 3. space runs out during the copy ------------------------------------------
big=$T/big.img
make_dense "$big" 256
shab=$(sha "$big")
mid=$T/mid
mkdir "$mid"
mount -t tmpfs -o size=300m tmpfs "$mid" || fail "mount tmpfs on $mid failed"
it_on_cleanup "umount $mid || umount -l $mid"
"$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" --progress none \
  create dom3 --disk "vda=$big,file=$mid/s.raw" --name s1 >"$OUT" 2>"$ERR" &
pid=$!
it_on_cleanup "kill -CONT $pid; kill -9 $pid"
if ! wait_for_copy 60 "$pid" "$mid" "$mid/.s.raw.part-*"; then
  RC=0
  wait "$pid" || RC=$?
  show_output
  fail "the copy into $mid never started (snapctl exited $RC)"
fi
kill -STOP "$pid"
[ ! -e "$mid/s.raw" ] || fail "the copy finished before snapctl could be stopped; use a larger disk on this machine"
echo "stopped snapctl with $(($(alloc "$COPY_FILE") >> 20)) MiB copied; filling $mid"
# Fill every byte left, then let the copy go on.
fallocate -l "$(df -B1 --output=avail "$mid" | tail -1)" "$mid/filler" 2>/dev/null ||
  dd if=/dev/zero of="$mid/filler" bs=1M status=none 2>/dev/null || true
[ "$(df -B1 --output=avail "$mid" | tail -1)" -lt $((1 << 20)) ] || fail "could not fill $mid"
kill -CONT "$pid"
RC=0
wait "$pid" || RC=$?
if [ "$RC" != 6 ]; then show_output; fail "create that ran out of space during the copy exited $RC, expected 6"; fi
err_has 'space' "the message says space ran out"
echo "message: $(cat "$ERR")"
rm -f "$mid/filler"
[ -z "$(ls -A "$mid")" ] || fail "the failed copy left $(ls -A "$mid") in $mid"
no_domain dom3 "the first create whose copy ran out of space"
assert_no_journal dom3 "create that ran out of space"
assert_eq "$(sha "$big")" "$shab" "the disk after the failed copy"
note "ENOSPC during the copy: exit 6, no partial file, nothing recorded"

# ---- 4. revert without room for the staging copy --------------------------------
rm -f "$disk"
disk=$small/r.img
make_dense "$disk" 20
shar0=$(sha "$disk")
ok "create with file= elsewhere" create dom4 --disk "vda=$disk,file=$T/r-snap.raw" --name s1
scribble "$disk" 0 4 r1
shar1=$(sha "$disk")
fallocate -l "$(($(df -B1 --output=avail "$small" | tail -1) - (8 << 20)))" "$small/filler" ||
  fail "fallocate on $small failed"
expect 6 "revert without room for the staging copy" -- revert dom4 s1
err_has 'needs [0-9.]+ MiB, [0-9.]+ (MiB|KiB|bytes) free' "needed vs free in the revert's message"
assert_eq "$(sha "$disk")" "$shar1" "the disk after the refused revert"
assert_no_leftovers "$small"
assert_no_journal dom4 "refused revert"
rm -f "$small/filler"
ok "revert once there is room" revert dom4 s1
assert_eq "$(sha "$disk")" "$shar0" "the disk after the revert"
note "revert without room refused: exit 6, disk unchanged; works once there is room"

it_done
