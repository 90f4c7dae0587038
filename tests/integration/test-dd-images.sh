#!/bin/bash
# test-dd-images.sh — the dd backend on the plain filesystem, with dense,
# 10 %-sparse and all-hole raw images (256 MiB each):
#   create → the snapshot file is a bit-exact copy that keeps the holes;
#   overwrite parts, second snapshot, overwrite again;
#   revert to the first → original bytes, holes kept, the disk's mode, owner
#   and xattrs kept, the newer snapshot survives (branching);
#   revert to the second → its bytes; delete both → files and dirs gone,
#   list empty.
# Plus a loop block device with file=: snapshot keeps the device's zero
# blocks as holes, revert writes it back in place.
# Plus objects vmsnap did not make: a foreign file at a snapshot's name is
# never overwritten (exit 9) nor deleted (delete leaves it, with a note);
# delete --metadata-only (the file stays, listed as foreign), --children-only
# and --children.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
it_init test-dd-images
need_tool losetup

SIZE_MIB=256

# Allowed difference of allocated bytes between a file and its copy.
tolerance() { echo $(((512 << 10) + $1 / 50)); }

check_alloc() { # check_alloc FILE EXPECTED_ALLOC WHAT
  local got
  got=$(alloc "$1")
  within "$got" "$2" "$(tolerance "$2")" ||
    fail "$3: $1 has $got bytes allocated, the original $2 (holes not kept?)"
}

run_kind() {
  local kind=$1 dom=dom-$1 img=$T/$1.img
  case $kind in
  dense) make_dense "$img" $SIZE_MIB ;;
  sparse) make_sparse "$img" $SIZE_MIB 10 ;;
  holes) truncate -s ${SIZE_MIB}M "$img" ;;
  esac
  # The revert must keep the disk's own mode, owner and xattrs.
  chown 65534:65534 "$img"
  chmod 0640 "$img"
  python3 -c 'import os,sys; os.setxattr(sys.argv[1], "user.vmsnap-test", b"keep me")' "$img"
  local sha0 alloc0 size
  sha0=$(sha "$img")
  alloc0=$(alloc "$img")
  size=$(stat -c %s "$img")
  echo "-- $kind: $((alloc0 >> 20)) MiB of $((size >> 20)) MiB allocated"
  case $kind in
  dense) [ "$alloc0" -ge $((size * 99 / 100)) ] || fail "$kind image is not dense ($alloc0 bytes allocated)" ;;
  sparse) [ "$alloc0" -le $((size / 5)) ] && [ "$alloc0" -ge $((size / 20)) ] ||
    fail "$kind image is not ~10 % allocated ($alloc0 of $size)" ;;
  holes) [ "$alloc0" -le 65536 ] || fail "$kind image has $alloc0 bytes allocated" ;;
  esac

  ok "$kind: first snapshot" create "$dom" --disk "vda=$img" --name first --description "$kind original"
  out_has "Created snapshot first of $dom" "$kind: create's report"
  local f1 f2
  f1=$(dd_file "$img" first)
  [ -f "$f1" ] || fail "$kind: snapshot file $f1 was not made"
  assert_eq "$(sha "$f1")" "$sha0" "$kind: checksum of the snapshot file $f1"
  assert_eq "$(stat -c %s "$f1")" "$size" "$kind: apparent size of $f1"
  check_alloc "$f1" "$alloc0" "$kind: snapshot file"
  if [ "$kind" = holes ]; then
    [ "$(alloc "$f1")" -le 65536 ] || fail "$kind: the copy of an all-hole image has $(alloc "$f1") bytes allocated"
  fi
  assert_eq "$(mode_of "$f1")" 600 "$kind: mode of the snapshot file"
  # info shows what the backend says of the file now: the space it takes.
  ok "$kind: info --json" --json info "$dom" first
  local used
  used=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["disks"][0]["status"]["used"])' \
    "$OUT") || { show_output; fail "$kind: info --json has no status.used"; }
  assert_eq "$used" "$(alloc "$f1")" "$kind: info --json status.used of the snapshot file"
  ok "$kind: info" info "$dom" first
  out_has "status: +[0-9.]+ [KMG]?i?B used" "$kind: human info shows the space the snapshot takes"

  # Overwrite the start, the middle and the end; then a second snapshot.
  scribble "$img" 0 1 "$kind-a"
  scribble "$img" $((SIZE_MIB / 2)) 3 "$kind-b"
  scribble "$img" $((SIZE_MIB - 1)) 1 "$kind-c"
  local sha1
  sha1=$(sha "$img")
  [ "$sha1" != "$sha0" ] || fail "$kind: overwriting did not change the image"
  assert_eq "$(sha "$f1")" "$sha0" "$kind: the snapshot file changed when the disk was written"
  ok "$kind: second snapshot (remembered disks)" create "$dom" --name second
  f2=$(dd_file "$img" second)
  assert_eq "$(sha "$f2")" "$sha1" "$kind: checksum of the second snapshot file"
  assert_eq "$(current "$dom")" second "$kind: current snapshot after the second create"

  scribble "$img" 10 2 "$kind-d"
  local sha2
  sha2=$(sha "$img")

  # Revert to the first: original bytes and holes, newer snapshot kept.
  ok "$kind: revert to first" revert "$dom" first
  assert_eq "$(sha "$img")" "$sha0" "$kind: checksum of the disk after revert to first"
  check_alloc "$img" "$alloc0" "$kind: reverted disk"
  if [ "$kind" = holes ]; then
    [ "$(alloc "$img")" -le 65536 ] || fail "$kind: the reverted all-hole disk has $(alloc "$img") bytes allocated"
  fi
  assert_eq "$(stat -c '%a %u:%g' "$img")" "640 65534:65534" "$kind: mode and owner of the reverted disk"
  python3 -c 'import os,sys; assert os.getxattr(sys.argv[1], "user.vmsnap-test") == b"keep me"' "$img" ||
    fail "$kind: the reverted disk lost its user.vmsnap-test xattr"
  [ -f "$f2" ] || fail "$kind: revert to first removed the newer snapshot's file $f2"
  assert_eq "$(sha "$f2")" "$sha1" "$kind: newer snapshot's file after revert to first"
  assert_eq "$(sha "$f1")" "$sha0" "$kind: the snapshot reverted to is not consumed"
  assert_eq "$(names "$dom")" "first second" "$kind: snapshots after revert to first"
  assert_eq "$(current "$dom")" first "$kind: current snapshot after revert to first"
  assert_no_leftovers "$T"

  # ... and forward again to the second.
  ok "$kind: revert to second" revert "$dom" second
  assert_eq "$(sha "$img")" "$sha1" "$kind: checksum of the disk after revert to second"
  assert_eq "$(current "$dom")" second "$kind: current snapshot after revert to second"
  [ "$(sha "$img")" != "$sha2" ] || fail "$kind: impossible"

  # Delete each: files and our per-disk dir gone, list empty.
  ok "$kind: delete second" delete "$dom" second
  [ ! -e "$f2" ] || fail "$kind: delete left $f2"
  [ -f "$f1" ] || fail "$kind: deleting second removed $f1"
  assert_eq "$(names "$dom")" first "$kind: snapshots after deleting second"
  ok "$kind: delete first" delete "$dom" first
  [ ! -e "$f1" ] || fail "$kind: delete left $f1"
  [ ! -e "$(dd_dir "$img")" ] || fail "$kind: delete of the last snapshot left $(dd_dir "$img"): $(ls -A "$(dd_dir "$img")")"
  assert_eq "$(names "$dom")" - "$kind: snapshots after deleting both"
  ok "$kind: list" list "$dom"
  out_has "No snapshots of $dom" "$kind: text list of an emptied domain"
  assert_eq "$(sha "$img")" "$sha1" "$kind: deleting snapshots changed the disk"
  assert_no_leftovers "$T"
  note "$kind image: create, revert (both ways), delete"
  rm -f "$img"
}

run_kind dense
run_kind sparse
run_kind holes

# ---- a block device (loop) with file= -----------------------------------------
backing=$T/blk.img
make_sparse "$backing" 64 10 blk
dev=
loop_attach "$backing" dev
shab=$(sha "$dev")
snapf=$T/blk-snap.raw
ok "block device: create with file=" create dom-blk --disk "vda=$dev,file=$snapf" --name b1
[ -f "$snapf" ] || fail "block device: no snapshot file at file=$snapf"
assert_eq "$(sha "$snapf")" "$shab" "block device: checksum of the snapshot file"
# The device has no holes to see, but its zero blocks stay holes in the copy.
[ "$(alloc "$snapf")" -le $(((64 << 20) / 4)) ] ||
  fail "block device: the copy of a 10 %-full device has $(alloc "$snapf") bytes allocated (zero blocks written out)"
assert_eq "$(mode_of "$snapf")" 600 "block device: mode of the snapshot file"
scribble "$dev" 0 2 blk-a
scribble "$dev" 40 8 blk-b
[ "$(sha "$dev")" != "$shab" ] || fail "block device: writes did not change it"
ok "block device: revert" revert dom-blk b1
assert_eq "$(sha "$dev")" "$shab" "block device: checksum after revert"
ok "block device: delete" delete dom-blk b1
[ ! -e "$snapf" ] || fail "block device: delete left $snapf"
assert_eq "$(names dom-blk)" - "block device: snapshots after delete"
note "loop block device with file=: create, revert in place, delete"

# ---- objects vmsnap did not make; delete modes ----------------------------------
w=$T/w.img
make_sparse "$w" 8 50 w
ok "foreign: first snapshot" create dw --disk "vda=$w" --name a
# A file already at the name the next snapshot would take: never overwritten.
mkdir -p "$(dd_dir "$w")"
echo "not vmsnap's" >"$(dd_file "$w" b)"
expect 9 "create over a foreign file" -- create dw --name b
err_has 'not made by|never overwrites' "the refusal says the file is not ours"
assert_eq "$(cat "$(dd_file "$w" b)")" "not vmsnap's" "the foreign file after the refused create"
assert_eq "$(names dw)" "a $(dd_file "$w" b)" "snapshots after the refused create (the file is listed as foreign)"
rm "$(dd_file "$w" b)"
ok "create b" create dw --name b
ok "create c" create dw --name c
# A snapshot file replaced behind vmsnap's back: delete forgets the snapshot
# but leaves the file that is not its own.
echo "replaced" >"$T/c.new"
mv "$T/c.new" "$(dd_file "$w" c)"
ok "delete of a snapshot whose file was replaced" delete dw c
err_has 'left .* in place|not made' "the delete says it left the foreign file"
assert_eq "$(cat "$(dd_file "$w" c)")" replaced "the foreign file after delete"
rm "$(dd_file "$w" c)"
# --metadata-only keeps the file (then listed as foreign), --children takes
# the subtree, --children-only keeps the parent.
ok "create c again" create dw --name c
ok "delete --metadata-only" delete dw c --metadata-only
[ -f "$(dd_file "$w" c)" ] || fail "delete --metadata-only removed the file"
assert_eq "$(names dw | tr ' ' '\n' | grep -c '^/.*vmsnap-c.raw$' || true)" 1 "the kept file listed as a foreign object"
sc list dw
out_has 'foreign' "list marks the kept file as foreign"
rm "$(dd_file "$w" c)"
ok "create c" create dw --name c
ok "create d" create dw --name d
assert_eq "$(names dw)" "a b c d" "snapshots before the subtree deletes"
ok "delete b --children-only" delete dw b --children-only
assert_eq "$(names dw)" "a b" "snapshots after delete b --children-only"
for n in c d; do [ ! -e "$(dd_file "$w" $n)" ] || fail "delete --children-only left $(dd_file "$w" $n)"; done
ok "create e (child of b)" create dw --name e
ok "delete a --children" delete dw a --children
assert_eq "$(names dw)" - "snapshots after delete a --children"
[ ! -e "$(dd_dir "$w")" ] || fail "delete --children left $(ls -A "$(dd_dir "$w")")"
note "foreign files never overwritten nor deleted; --metadata-only, --children, --children-only"

it_done
