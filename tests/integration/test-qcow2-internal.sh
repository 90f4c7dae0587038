#!/bin/bash
# test-qcow2-internal.sh — the qcow2 backend's offline internal snapshots,
# on real qcow2 images made and read with qemu-img and qemu-io:
#   create / revert / branching (newer snapshots survive) / delete, the data
#   checked with qemu-io patterns and the image with `qemu-img check` after
#   every step;
#   foreign snapshots (made with qemu-img, one with a vmsnap-looking tag, one
#   with VM state made by savevm) are listed as foreign and survive every op;
#   duplicate tags (foreign ones, and a foreign copy of vmsnap's own tag) do
#   not confuse vmsnap; a tag that is taken is refused (exit 9);
#   a snapshot deleted by hand, or deleted and made again with the same tag
#   and the same (reused) qcow2 id: revert refuses (exit 3), delete leaves
#   the impostor alone;
#   an image held by a running qemu-io: create, revert and delete exit 4
#   (busy), list still works, nothing changes (the refused delete is
#   finished by recover once the image is free);
#   a truncated qcow2, a random-bytes file and a raw file declared
#   format=qcow2: clear error, nothing changed, no metadata;
#   the image given without format=: copied as raw by dd, with the hint;
#   a qcow2 image on a loop block device;
#   a full filesystem (tmpfs): exit 6, nothing changed;
#   no qemu-img on PATH: the backend is unavailable and says why;
#   a create cancelled (SIGINT) after qemu-img made the snapshot: exit 5,
#   the snapshot rolled back;
#   crashes inside create (before the qcow2 id is recorded) and revert,
#   then recover.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
it_init test-qcow2-internal
need_tool qemu-img qemu-io qemu-system-x86_64 mkfifo losetup
[ -f "$PLUGIN_BUILD_DIR/qcow2.so" ] || fail "no qcow2 plugin at $PLUGIN_BUILD_DIR/qcow2.so"

# ---- helpers ------------------------------------------------------------------
# The image named for qemu-img snapshot (which has no -f in qemu-img 7.2):
# the format forced by the driver, as the plugin does.
spec() { printf 'json:{"driver":"qcow2","file":{"driver":"%s","filename":"%s"}}' \
  "$([ -b "$1" ] && echo host_device || echo file)" "$1"; }
qsnap() { qemu-img snapshot "$1" "$2" "$(spec "$3")"; } # qsnap -c|-a|-d TAG|ID IMG

new_image() { qemu-img create -q -f qcow2 "$1" "${2:-256M}" || fail "qemu-img create $1 failed"; }

write_pat() { # write_pat IMG PATTERN
  qemu-io -f qcow2 -c "write -P $2 0 1M" "$1" >"$T/qemu-io.out" 2>&1 ||
    { cat "$T/qemu-io.out" >&2; fail "qemu-io could not write pattern $2 into $1"; }
}

read_pat() { # read_pat IMG PATTERN WHAT
  local out
  out=$(qemu-io -f qcow2 -c "read -P $2 0 1M" "$1" 2>&1) || fail "$3: qemu-io read of $1 failed: $out"
  ! grep -q "Pattern verification failed" <<<"$out" || fail "$3: $1 does not hold pattern $2: $out"
  grep -q "read 1048576/1048576 bytes" <<<"$out" || fail "$3: qemu-io read of $1: $out"
}

qcheck() { # qcheck IMG WHAT: qemu-img check finds nothing, not even leaks
  local out
  out=$(qemu-img check -f qcow2 "$1" 2>&1) || fail "$2: qemu-img check -f qcow2 $1 is not clean: $out"
}

# tags IMG: "ID TAG VMSTATE" per snapshot, in table order.
tags() {
  qemu-img info -f qcow2 -U --output=json "$1" | python3 -c '
import json, sys
for s in json.load(sys.stdin).get("snapshots", []):
    print(s["id"], s["name"], s["vm-state-size"])'
}
tag_list() { tags "$1" | awk '{print $2}' | tr '\n' ' ' | sed 's/ $//'; }
has_tag() { # (grep -q on a pipe would break it, and pipefail would notice)
  local t
  t=$(tags "$1" | awk '{print $2}')
  grep -qxF -- "$2" <<<"$t"
}

# listing DOMAIN: "NAME|FOREIGN|DESCRIPTION" per snapshot of `snapctl --json list`.
listing() {
  sc --json list "$1"
  [ "$RC" = 0 ] || { show_output; fail "snapctl --json list $1 exited $RC"; }
  python3 -c '
import json, sys
for d in json.load(open(sys.argv[1])):
    print("%s|%d|%s" % (d["name"], bool(d.get("foreign")), d.get("description") or ""))' "$OUT"
}
# recorded DOMAIN: the names of vmsnap's own snapshots ("-" for none).
recorded() {
  local l
  l=$(listing "$1" | awk -F'|' '$2 == 0 {print $1}' | tr '\n' ' ' | sed 's/ $//')
  echo "${l:--}"
}
listed() { # listed DOMAIN NAME FOREIGN(0|1) WHAT
  local l
  l=$(listing "$1")
  grep -q "^$2|$3|" <<<"$l" || { echo "$l" >&2; fail "$4: '$2' is not listed with foreign=$3"; }
}

no_metadata() { # no_metadata DOMAIN WHAT
  local docs
  docs=$(find "$ST/domains/$1" -name '*.json' 2>/dev/null || true)
  [ -z "$docs" ] || fail "$2: metadata written: $docs"
}

# ---- create, revert, branching, delete ----------------------------------------
IMG=$T/vm.qcow2
new_image "$IMG"
write_pat "$IMG" 0x44
qsnap -c foreign "$IMG" || fail "qemu-img snapshot -c foreign failed"
qsnap -c vmsnap-hello+20world "$IMG" || fail "qemu-img snapshot -c vmsnap-hello+20world failed"
# A snapshot with VM state inside the image, made by QEMU's savevm.
printf 'savevm withstate\nquit\n' |
  timeout 120 qemu-system-x86_64 -nodefaults -display none -S -accel tcg -m 32 \
    -drive "file=$IMG,format=qcow2,if=virtio" -monitor stdio >"$T/savevm.out" 2>&1 ||
  { cat "$T/savevm.out" >&2; fail "savevm with qemu-system-x86_64 failed"; }
grep -q '^[0-9]* withstate [1-9]' <<<"$(tags "$IMG")" || fail "savevm made no snapshot with VM state: $(tags "$IMG")"
FOREIGN_TAGS=$(tag_list "$IMG")
write_pat "$IMG" 0x11
qcheck "$IMG" "the new image"

ok "create s1" create vm --name s1 --disk "vda=$IMG,format=qcow2"
has_tag "$IMG" vmsnap-s1 || fail "create s1: no vmsnap-s1 in $(tag_list "$IMG")"
qcheck "$IMG" "after create s1"
sc --json info vm s1
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
d = d[0] if isinstance(d, list) else d
disk = d["disks"][0]
assert disk["backend"] == "qcow2", disk
data = disk["data"]
assert data["tag"] == "vmsnap-s1" and data["image"] == sys.argv[2] and data["id"], data
' "$OUT" "$IMG" || { show_output; fail "create s1: recorded backend data"; }

listed vm s1 0 "list after create s1"
listed vm foreign 1 "the foreign snapshot"
listed vm "hello world" 1 "a foreign snapshot with a vmsnap mark, its name decoded"
listed vm withstate 1 "the savevm snapshot"
grep -q '^withstate|1|holds VM state ([0-9]* bytes, made by savevm)' <<<"$(listing vm)" ||
  { listing vm >&2; fail "the savevm snapshot is not noted as holding VM state"; }
note "create, list with foreign snapshots"

write_pat "$IMG" 0x22
ok "create s2" create vm --name s2
qcheck "$IMG" "after create s2"
ok "revert to s1" revert vm s1
read_pat "$IMG" 0x11 "after revert to s1"
qcheck "$IMG" "after revert to s1"
has_tag "$IMG" vmsnap-s2 || fail "revert to s1 dropped the newer s2"

write_pat "$IMG" 0x33
ok "create s3 (a branch off s1)" create vm --name s3
qcheck "$IMG" "after create s3"
ok "revert to s2" revert vm s2
read_pat "$IMG" 0x22 "after revert to s2"
qcheck "$IMG" "after revert to s2"
ok "revert to s3" revert vm s3
read_pat "$IMG" 0x33 "after revert to s3"
qcheck "$IMG" "after revert to s3"
ok "revert to s1 again" revert vm s1
read_pat "$IMG" 0x11 "after the second revert to s1"
note "revert and branching"

for s in s2 s1 s3; do
  ok "delete $s" delete vm $s
  ! has_tag "$IMG" "vmsnap-$s" || fail "delete $s: vmsnap-$s is still in $(tag_list "$IMG")"
  qcheck "$IMG" "after delete $s"
done
assert_eq "$(tag_list "$IMG")" "$FOREIGN_TAGS" "snapshots left after deleting vmsnap's"
read_pat "$IMG" 0x11 "the disk after deleting every snapshot"
assert_eq "$(listing vm | grep -c '|0|' || true)" 0 "recorded snapshots after deleting them all"
listed vm foreign 1 "the foreign snapshot after every vmsnap op"
# The foreign snapshot's data is intact.
qsnap -a foreign "$IMG" || fail "qemu-img snapshot -a foreign failed"
read_pat "$IMG" 0x44 "the foreign snapshot's data"
qcheck "$IMG" "after applying the foreign snapshot"
note "delete; foreign snapshots survive"

# ---- duplicate tags -----------------------------------------------------------
DUP=$T/dup.qcow2
new_image "$DUP"
write_pat "$DUP" 0x55
qsnap -c twin "$DUP"
write_pat "$DUP" 0x66
qsnap -c twin "$DUP"
write_pat "$DUP" 0x77
ok "create with two foreign snapshots sharing a tag" create dup --name d1 --disk "vda=$DUP,format=qcow2"
assert_eq "$(listing dup | grep -c '^twin|1|' || true)" 2 "both foreign 'twin' snapshots listed"
# A foreign copy of vmsnap's own tag, later in the table.
write_pat "$DUP" 0x88
qsnap -c vmsnap-d1 "$DUP"
write_pat "$DUP" 0x99
ok "revert with a foreign copy of vmsnap's tag" revert dup d1
read_pat "$DUP" 0x77 "revert to d1 picked vmsnap's snapshot, not the copy"
ok "delete d1" delete dup d1
assert_eq "$(tags "$DUP" | awk '{print $2}' | sort | tr '\n' ' ')" "twin twin vmsnap-d1 " "tags after delete d1"
qsnap -a vmsnap-d1 "$DUP"
read_pat "$DUP" 0x88 "the foreign copy of vmsnap's tag survived"
qsnap -a 1 "$DUP"
read_pat "$DUP" 0x55 "the first twin survived"
qsnap -a 2 "$DUP"
read_pat "$DUP" 0x66 "the second twin survived"
qcheck "$DUP" "after the duplicate-tag ops"
# A tag that is taken (a leftover vmsnap-looking snapshot) is never reused.
before=$(tag_list "$DUP")
expect 9 "create over a taken tag" -- create dup --name d1
err_has 'already holds a snapshot tagged vmsnap-d1' "the refusal names the tag"
assert_eq "$(tag_list "$DUP")" "$before" "snapshots after the refused create"
note "duplicate tags"

# ---- snapshots changed behind vmsnap's back ------------------------------------
GONE=$T/gone.qcow2
new_image "$GONE"
qsnap -c keep "$GONE"
write_pat "$GONE" 0x11
ok "create g1" create gone --name g1 --disk "vda=$GONE,format=qcow2"
ok "create g2" create gone --name g2
# g2 deleted by hand and a snapshot with its tag made again: qcow2 hands
# out the same id (highest + 1), but it is not vmsnap's snapshot.
g2id=$(tags "$GONE" | awk '$2 == "vmsnap-g2" {print $1}')
qsnap -d vmsnap-g2 "$GONE"
write_pat "$GONE" 0x22
qsnap -c vmsnap-g2 "$GONE"
assert_eq "$(tags "$GONE" | awk '$2 == "vmsnap-g2" {print $1}')" "$g2id" "the id qcow2 gave the impostor"
expect 3 "revert to a snapshot whose tag and id were reused" -- revert gone g2
err_has "behind vmsnap's back" "the refusal says the snapshot was removed"
read_pat "$GONE" 0x22 "the refused revert changed nothing"
ok "delete g2 (the impostor stays)" delete gone g2
err_has "not the one vmsnap made" "delete warns about the impostor"
has_tag "$GONE" vmsnap-g2 || fail "delete g2 removed a snapshot vmsnap did not make"
# g1 deleted by hand.
qsnap -d vmsnap-g1 "$GONE"
expect 3 "revert to a snapshot deleted by hand" -- revert gone g1
err_has "vmsnap-g1 .*was removed from $GONE behind vmsnap's back" "the refusal names the snapshot and the image"
ok "delete g1 (already gone)" delete gone g1
assert_eq "$(recorded gone)" - "recorded snapshots after deleting g1 and g2"
assert_eq "$(tag_list "$GONE")" "keep vmsnap-g2" "snapshots left in the image"
listed gone g2 1 "the impostor is listed as a foreign snapshot named g2"
qcheck "$GONE" "after the changes behind vmsnap's back"
note "snapshots changed behind vmsnap's back"

# ---- an image in use ----------------------------------------------------------
BUSY=$T/busy.qcow2
new_image "$BUSY"
write_pat "$BUSY" 0x11
ok "create b1" create busy --name b1 --disk "vda=$BUSY,format=qcow2"
hold_image "$BUSY"
! qemu-img info -f qcow2 "$BUSY" >/dev/null 2>&1 || fail "qemu-io did not lock $BUSY"
before=$(tag_list "$BUSY")
expect 4 "create while qemu-io holds the image" -- create busy --name b2
err_has "qemu-io|lock|in use" "the refusal names the holder or the lock"
expect 4 "revert while qemu-io holds the image" -- revert busy b1
err_has "qemu-io|lock|in use" "the refusal names the holder or the lock"
ok "list while qemu-io holds the image" list busy
out_has "b1" "list shows b1"
# The backend refuses in prepare, before the delete is journaled: nothing
# changes and no recover is needed.
expect 4 "delete while qemu-io holds the image" -- delete busy b1
err_has "in use by another process" "the refusal says the image is in use"
assert_no_journal busy "the refused delete"
release_image
assert_eq "$(tag_list "$BUSY")" "$before" "snapshots after the refused ops"
assert_eq "$(names busy)" b1 "recorded snapshots after the refused ops"
qcheck "$BUSY" "after the refused ops"
ok "delete once the image is free" delete busy b1
assert_eq "$(tag_list "$BUSY")" "" "snapshots after delete b1"
assert_eq "$(names busy)" - "recorded snapshots after delete b1"
assert_no_journal busy "delete b1"
qcheck "$BUSY" "after delete b1"
note "an image in use"

# ---- images that are not (intact) qcow2 ---------------------------------------
bad_image() { # bad_image DOMAIN FILE EXIT REGEX WHAT
  local sum
  sum=$(sha "$2")
  expect "$3" "$5" -- create "$1" --name x --disk "vda=$2,format=qcow2"
  err_has "$2" "$5: the message names the file"
  err_has "$4" "$5: the message says why"
  assert_eq "$(sha "$2")" "$sum" "$5: the file was changed"
  no_metadata "$1" "$5"
}
cp "$DUP" "$T/trunc.qcow2"
truncate -s 100K "$T/trunc.qcow2"
bad_image trunc "$T/trunc.qcow2" 1 "damaged|truncated|corrupt" "a truncated qcow2"
prng $((1 << 20)) random >"$T/random.img"
bad_image random "$T/random.img" 2 "not a qcow2 image" "a random-bytes file declared qcow2"
make_sparse "$T/raw.img" 16 10
bad_image raw "$T/raw.img" 2 "not a qcow2 image.*format=raw" "a raw file declared qcow2"
# Refused by the in-process check (no qemu-img check): QEMU's corrupt mark,
# and data clusters past the end of an image cut in half (no snapshot
# table to lose: the header and the tables it names still read).
new_image "$T/corrupt.qcow2" 64M
write_pat "$T/corrupt.qcow2" 0x11
printf '\x02' | dd of="$T/corrupt.qcow2" bs=1 seek=79 conv=notrunc status=none # incompatible bit 1
bad_image corrupt "$T/corrupt.qcow2" 1 "marked .*corrupt" "a qcow2 image marked corrupt"
new_image "$T/half.qcow2" 64M
qemu-io -f qcow2 -c "write -P 0x11 0 1M" -c "write -P 0x11 32M 1M" "$T/half.qcow2" >/dev/null ||
  fail "qemu-io could not write into $T/half.qcow2"
truncate -s $(($(stat -c %s "$T/half.qcow2") / 2)) "$T/half.qcow2"
bad_image half "$T/half.qcow2" 1 "damaged.*beyond the end of the file.*truncated" \
  "a qcow2 image cut in half"
note "images that are not intact qcow2"

# ---- options an internal snapshot has no use for ------------------------------
sum=$(sha "$BUSY")
sc create ext --name e1 --disk "vda=$BUSY,format=qcow2,mode=sideways"
[ "$RC" = 2 ] || { show_output; fail "mode=sideways exited $RC, not 2"; }
err_has "mode must be internal or external" "an unknown mode is named"
sc create ext --name e1 --disk "vda=$BUSY,format=qcow2,file=$T/elsewhere"
[ "$RC" != 0 ] || { show_output; fail "file= on an internal qcow2 snapshot was accepted"; }
err_has "file=" "the refusal of file= names it"
assert_eq "$(sha "$BUSY")" "$sum" "refused modes changed the image"
no_metadata ext "refused modes"
note "an unknown mode and file= refused"

# ---- no format=: raw to dd, with the hint -------------------------------------
HINT=$T/hint.qcow2
new_image "$HINT" 64M
write_pat "$HINT" 0x11
sum=$(sha "$HINT")
ok "a qcow2 image without format= (raw, dd)" create hint --name h1 --disk "vda=$HINT"
err_has "looks like a qcow2 image but is treated as raw" "snapctl's format hint"
sc --json info hint h1
grep -q '"backend": *"dd"' "$OUT" || { show_output; fail "the undeclared qcow2 image did not go to dd"; }
assert_eq "$(sha "$(dd_file "$HINT" h1)")" "$sum" "dd's raw copy of the qcow2 file"
assert_eq "$(tag_list "$HINT")" "" "internal snapshots in the undeclared image"
write_pat "$HINT" 0x22
ok "revert the raw copy" revert hint h1
assert_eq "$(sha "$HINT")" "$sum" "the file after reverting dd's copy"
read_pat "$HINT" 0x11 "the qcow2 image after reverting dd's raw copy"
ok "delete h1" delete hint h1
note "no format=: a raw copy by dd, with a hint"

# ---- a qcow2 image on a block device -------------------------------------------
truncate -s 96M "$T/blk.backing"
loop_attach "$T/blk.backing" BLK
qemu-img create -q -f qcow2 "$BLK" 64M || fail "qemu-img create on $BLK failed"
write_pat "$BLK" 0x11
ok "create on a block device" create blk --name k1 --disk "vda=$BLK,format=qcow2"
write_pat "$BLK" 0x22
ok "second snapshot on a block device" create blk --name k2
ok "revert on a block device" revert blk k1
read_pat "$BLK" 0x11 "block device after revert to k1"
ok "revert to k2 on a block device" revert blk k2
read_pat "$BLK" 0x22 "block device after revert to k2"
ok "delete k1 on a block device" delete blk k1
ok "delete k2 on a block device" delete blk k2
assert_eq "$(tag_list "$BLK")" "" "snapshots left on the block device"
qcheck "$BLK" "block device at the end"
note "a qcow2 image on a block device"

# ---- a full filesystem ------------------------------------------------------------
mkdir "$T/small"
mount -t tmpfs -o size=16M tmpfs "$T/small" || fail "cannot mount a tmpfs on $T/small"
it_on_cleanup "umount $T/small || umount -l $T/small"
SMALL=$T/small/vm.qcow2
new_image "$SMALL" 64M
write_pat "$SMALL" 0x11
avail=$(($(stat -f -c %a "$T/small") * $(stat -f -c %S "$T/small")))
head -c $((avail - (1 << 20))) /dev/zero >"$T/small/filler"
sum=$(sha "$SMALL")
expect 6 "create with 1 MiB free" -- create small --name f1 --disk "vda=$SMALL,format=qcow2"
err_has "free" "the refusal says how much is free"
assert_eq "$(sha "$SMALL")" "$sum" "the image after the refused create"
no_metadata small "create with 1 MiB free"
rm "$T/small/filler"
ok "create once there is room" create small --name f1 --disk "vda=$SMALL,format=qcow2"
qcheck "$SMALL" "after the create on the tmpfs"
note "a full filesystem: exit 6, nothing changed"

# ---- no qemu-img; a create cancelled while qemu-img runs --------------------------
mkdir "$T/nobin"
RC=0
env PATH="$T/nobin" "$SNAPCTL" --plugin-dir "$PLUGIN_BUILD_DIR" plugins >"$OUT" 2>"$ERR" || RC=$?
[ "$RC" = 0 ] || { show_output; fail "snapctl plugins without qemu-img exited $RC"; }
out_has "qemu-img not found on PATH: install qemu-utils" "the qcow2 backend says why it is unavailable"

# A qemu-img that makes the snapshot, then hangs: the cancel kills it after
# the snapshot exists, and the rollback must still delete it.
mkdir "$T/slowbin"
{
  echo '#!/bin/bash'
  echo "$(command -v qemu-img) \"\$@\""
  echo "rc=\$?"
  echo "case \" \$* \" in *\" -c \"*) touch '$T/slow.made'; sleep 60 ;; esac"
  echo "exit \$rc"
} >"$T/slowbin/qemu-img"
chmod 0755 "$T/slowbin/qemu-img"
CAN=$T/cancel.qcow2
new_image "$CAN"
write_pat "$CAN" 0x11
PATH="$T/slowbin:$PATH" "$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" --progress none \
  create cancel --name c1 --disk "vda=$CAN,format=qcow2" >"$OUT" 2>"$ERR" &
PID=$!
it_on_cleanup "kill -9 $PID"
wait_for_glob 60 "$PID" "$T/slow.made" || { show_output; fail "the slow qemu-img never made the snapshot"; }
has_tag "$CAN" vmsnap-c1 || fail "the slow qemu-img did not make vmsnap-c1"
kill -INT "$PID"
RC=0
wait "$PID" || RC=$?
[ "$RC" = 5 ] || { show_output; fail "create cancelled while qemu-img ran exited $RC, expected 5"; }
! has_tag "$CAN" vmsnap-c1 || fail "the cancelled create left vmsnap-c1 in $(tag_list "$CAN")"
no_metadata cancel "the cancelled create"
assert_no_journal cancel "the cancelled create"
qcheck "$CAN" "after the cancelled create"
note "no qemu-img: unavailable with a reason; a cancelled create leaves nothing"

# ---- crashes, then recover -----------------------------------------------------
crash() { # crash POINT ARGS...: must die at the crash point
  local point=$1
  shift
  RC=0
  VMSNAP_CRASHPOINT=$point "$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" \
    --progress none "$@" >"$OUT" 2>"$ERR" || RC=$?
  [ "$RC" = 137 ] || { show_output; fail "$point: 'snapctl $*' exited $RC, expected 137"; }
}
CR=$T/crash.qcow2
new_image "$CR"
write_pat "$CR" 0x11
ok "create c1" create crash --name c1 --disk "vda=$CR,format=qcow2"
for point in create:journaled create:disks-made create:domain-written; do
  crash "$point" create crash --name c2
  ok "$point: recover" recover crash
  ! has_tag "$CR" vmsnap-c2 || fail "$point + recover: vmsnap-c2 is still in $(tag_list "$CR")"
  assert_eq "$(names crash)" c1 "$point + recover: recorded snapshots"
  assert_no_journal crash "$point + recover"
  qcheck "$CR" "$point + recover"
done
crash create:metadata-written create crash --name c2
ok "create:metadata-written: recover" recover crash
has_tag "$CR" vmsnap-c2 || fail "create:metadata-written + recover: vmsnap-c2 is not in $(tag_list "$CR")"
assert_eq "$(names crash)" "c1 c2" "create:metadata-written + recover: recorded snapshots (kept)"
assert_no_journal crash "create:metadata-written + recover"
ok "delete the kept c2" delete crash c2
write_pat "$CR" 0x22
crash revert:journaled revert crash c1
ok "revert:journaled: recover" recover crash
read_pat "$CR" 0x22 "revert:journaled + recover (rolled back)"
crash revert:finishing revert crash c1
ok "revert:finishing: recover" recover crash
read_pat "$CR" 0x11 "revert:finishing + recover (finished)"
crash delete:journaled delete crash c1
ok "delete:journaled: recover" recover crash
assert_eq "$(tag_list "$CR")" "" "delete:journaled + recover: snapshots left"
assert_eq "$(names crash)" - "delete:journaled + recover: recorded snapshots"
qcheck "$CR" "after the crashes"
note "crashes and recover"

it_done
