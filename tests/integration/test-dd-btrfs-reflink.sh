#!/bin/bash
# test-dd-btrfs-reflink.sh — the dd backend on a real btrfs (a loop-mounted
# 1 GiB image): a snapshot of a 512 MiB dense disk is a reflink (its extents
# are shared with the disk, no space is used, and it could not even fit as a
# full copy), the revert is bit-exact (and a reflink too), and
# `snapctl plugins --json` lists the reflink capability.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
it_init test-dd-btrfs-reflink
need_tool mkfs.btrfs btrfs filefrag

truncate -s 1G "$T/btrfs.img"
mkfs.btrfs -q "$T/btrfs.img" >"$T/mkfs.log" 2>&1 || { cat "$T/mkfs.log"; fail "mkfs.btrfs failed"; }
mnt=$T/mnt
mount_img "$T/btrfs.img" "$mnt"
[ "$(stat -f -c %T "$mnt")" = btrfs ] || fail "$mnt is not a btrfs after mounting"

# ---- the capability -------------------------------------------------------------
ok "plugins --json" --json plugins
python3 - "$OUT" <<'EOF' || fail "snapctl plugins --json does not list dd with the reflink capability"
import json, sys
dd = [p for p in json.load(open(sys.argv[1])) if p["name"] == "dd"]
assert dd and "reflink" in dd[0]["capabilities"], dd
EOF
note "plugins --json: dd has reflink"

img=$mnt/vm.img
make_dense "$img" 512
sync
sha0=$(sha "$img")
free_before=$(df -B1 --output=avail "$mnt" | tail -1)
# Two full copies could never fit: the 512 MiB disk plus a 512 MiB copy is
# all of a 1 GiB btrfs, before its metadata.
[ "$free_before" -lt $((512 << 20)) ] ||
  fail "setup: $free_before bytes free on $mnt; the test needs less than a full copy's room"

t0=$(date +%s%N)
ok "create on btrfs" -v create dom --disk "vda=$img" --name s1
t1=$(date +%s%N)
snap=$(dd_file "$img" s1)
[ -f "$snap" ] || fail "no snapshot file $snap"
echo "create took $(((t1 - t0) / 1000000)) ms"
grep -qi reflink "$ERR" || echo "note: snapctl -v did not mention reflink in its log"
sync

# Shared extents: filefrag flags them, btrfs counts them.
filefrag -v "$snap" >"$T/frag" 2>&1 || { cat "$T/frag"; fail "filefrag -v $snap failed"; }
grep -q shared "$T/frag" || { cat "$T/frag"; fail "the extents of $snap are not shared with the disk: not a reflink"; }
btrfs filesystem du -s --raw "$mnt" >"$T/du" 2>&1 || { cat "$T/du"; fail "btrfs filesystem du failed"; }
shared=$(awk 'NR == 2 {print $3}' "$T/du")
[ -n "$shared" ] && [ "$shared" -ge $((500 << 20)) ] ||
  { cat "$T/du"; fail "btrfs filesystem du: $shared bytes shared, expected about 512 MiB"; }
free_after=$(df -B1 --output=avail "$mnt" | tail -1)
[ $((free_before - free_after)) -lt $((64 << 20)) ] ||
  fail "create used $((free_before - free_after)) bytes of $mnt: a reflink uses next to nothing"
assert_eq "$(sha "$snap")" "$sha0" "checksum of the reflinked snapshot"
note "create is a reflink ($shared bytes shared)"

# ---- revert ------------------------------------------------------------------------
scribble "$img" 0 4 a
scribble "$img" 300 16 b
scribble "$img" 508 4 c
sha1=$(sha "$img")
[ "$sha1" != "$sha0" ] || fail "writes did not change the disk"
assert_eq "$(sha "$snap")" "$sha0" "the snapshot changed when the disk was written (reflink not copy-on-write?)"
ok "revert on btrfs" revert dom s1
assert_eq "$(sha "$img")" "$sha0" "checksum of the disk after revert"
assert_eq "$(sha "$snap")" "$sha0" "the snapshot after revert"
sync
filefrag -v "$img" >"$T/frag" 2>&1
grep -q shared "$T/frag" || { cat "$T/frag"; fail "the reverted disk does not share extents with the snapshot: revert was a full copy"; }
assert_no_leftovers "$mnt"
note "revert is bit-exact and a reflink"

# A second snapshot while the first exists: still no space used.
ok "second create" create dom --name s2
assert_eq "$(sha "$(dd_file "$img" s2)")" "$sha0" "checksum of the second snapshot"
ok "delete s1" delete dom s1
ok "delete s2" delete dom s2
[ ! -e "$snap" ] || fail "delete left $snap"
assert_eq "$(names dom)" - "snapshots after deleting both"
assert_eq "$(sha "$img")" "$sha0" "the disk after deleting the snapshots"

it_done
