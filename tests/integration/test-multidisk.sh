#!/bin/bash
# test-multidisk.sh — one snapshot of three disks, all or nothing:
#  three snapshot files made, revert restores all three, delete removes all;
#  a disk whose copy fails while the others are copied (its snapshot dir
#  made immutable with chattr +i) fails the create naming that disk, and
#  leaves no snapshot file of the other two, no metadata, no journal;
#  the same for a disk refused up front (file= under a regular file).
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
it_init test-multidisk
need_tool chattr

mkdir "$T/a" "$T/b" "$T/c"
d1=$T/a/vda.img d2=$T/b/vdb.img d3=$T/c/vdc.img
make_dense "$d1" 64 d1
make_sparse "$d2" 96 20 d2
make_sparse "$d3" 48 60 d3
s1=$(sha "$d1") s2=$(sha "$d2") s3=$(sha "$d3")
disks=(--disk "vda=$d1" --disk "vdb=$d2" --disk "vdc=$d3")

# ---- all three -------------------------------------------------------------------------
ok "create of three disks" create dom "${disks[@]}" --name s1
for p in "$d1:$s1" "$d2:$s2" "$d3:$s3"; do
  d=${p%%:*} want=${p#*:}
  f=$(dd_file "$d" s1)
  [ -f "$f" ] || fail "no snapshot file $f for $d"
  assert_eq "$(sha "$f")" "$want" "snapshot file of $d"
done
sc --json info dom s1
[ "$RC" = 0 ] || { show_output; fail "info dom s1 exited $RC"; }
python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
t = sorted(d["target"] for d in doc["disks"])
assert t == ["vda", "vdb", "vdc"], t' "$OUT" || fail "info does not list the three disks vda, vdb, vdc"
scribble "$d1" 5 3 x1
scribble "$d2" 50 3 x2
scribble "$d3" 0 1 x3
ok "second snapshot (remembered three disks)" create dom --name s2
for d in "$d1" "$d2" "$d3"; do [ -f "$(dd_file "$d" s2)" ] || fail "no s2 snapshot file for $d"; done
t1=$(sha "$d1") t2=$(sha "$d2") t3=$(sha "$d3")
ok "revert of three disks" revert dom s1
assert_eq "$(sha "$d1")" "$s1" "vda after revert"
assert_eq "$(sha "$d2")" "$s2" "vdb after revert"
assert_eq "$(sha "$d3")" "$s3" "vdc after revert"
ok "revert forward" revert dom s2
assert_eq "$(sha "$d1") $(sha "$d2") $(sha "$d3")" "$t1 $t2 $t3" "the three disks after revert to s2"
ok "delete s2" delete dom s2
ok "delete s1" delete dom s1
for d in "$d1" "$d2" "$d3"; do
  [ ! -e "$(dd_dir "$d")" ] || fail "delete left $(dd_dir "$d"): $(ls -A "$(dd_dir "$d")")"
done
assert_eq "$(names dom)" - "snapshots after deleting both"
assert_no_leftovers "$T"
note "three disks: create, revert, delete"

# ---- one disk fails during the create ------------------------------------------------------
# vdc's snapshot dir exists (ours: root, 0700) but is immutable: its copy cannot
# even be created, while vda and vdb copy fine.
sd3=$(dd_dir "$d3")
[ -d "$(dirname "$sd3")" ] || mkdir -m 0700 "$(dirname "$sd3")"
mkdir -m 0700 "$sd3"
chattr +i "$sd3" || fail "chattr +i $sd3 failed (needed to make vdc's copy fail)"
it_on_cleanup "chattr -i $sd3"
touch "$sd3/probe" 2>/dev/null && fail "setup: root can still write into the immutable $sd3"
expect 1 "create where vdc's copy fails" -- create bad "${disks[@]}" --name s1
err_has 'vdc' "the failure names the disk vdc"
! grep -Eq 'disk (vda|vdb)[ :(].*(failed|cannot)' "$ERR" || { show_output; fail "the failure blames vda or vdb"; }
for d in "$d1" "$d2"; do
  [ ! -e "$(dd_file "$d" s1)" ] || fail "the failed create left $(dd_file "$d" s1)"
done
assert_no_leftovers "$T"
assert_no_journal bad "failed three-disk create"
[ -z "$(find "$ST/domains/bad/snapshots" -type f 2>/dev/null)" ] || fail "the failed create left metadata"
no_domain bad "the failed first create"
chattr -i "$sd3"
rmdir "$sd3"
note "a copy failing on vdc: exit 1 naming vdc, nothing left of vda and vdb"

# ---- one disk refused up front --------------------------------------------------------------
echo "a regular file" >"$T/notadir"
expect 1 "create where vdc's file= is under a regular file" -- \
  create bad2 --disk "vda=$d1" --disk "vdb=$d2" --disk "vdc=$d3,file=$T/notadir/vdc.raw" --name s1
err_has 'vdc' "the refusal names the disk vdc"
for d in "$d1" "$d2"; do
  [ ! -e "$(dd_file "$d" s1)" ] || fail "the refused create left $(dd_file "$d" s1)"
done
assert_no_leftovers "$T"
assert_no_journal bad2 "refused three-disk create"
no_domain bad2 "the refused first create"
note "vdc refused in prepare: exit 1 naming vdc, nothing made"

# The failed domains still work once the cause is gone.
ok "create after the failure" create bad "${disks[@]}" --name s1
for d in "$d1" "$d2" "$d3"; do [ -f "$(dd_file "$d" s1)" ] || fail "no snapshot file for $d"; done
ok "delete" delete bad s1
assert_no_leftovers "$T"

it_done
