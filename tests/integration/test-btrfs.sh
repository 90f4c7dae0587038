#!/bin/bash
# test-btrfs.sh — the btrfs backend on a real btrfs (a loop-mounted image
# made here, unmounted and removed at exit, failure or not): data checked by
# checksums across create / modify / revert / branch / delete; the live
# subvolume's new id after a revert; foreign snapshots in list; file=;
# refusals that change nothing (not a subvolume, a missing path, nested
# subvolumes, a busy subvolume, a mount point, a read-only filesystem, no
# space); crashes at every journal step of create, revert and delete, then
# snapctl recover.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
it_init test-btrfs
need_tool mkfs.btrfs btrfs fallocate
[ -f "$PLUGIN_BUILD_DIR/btrfs.so" ] || fail "no btrfs plugin at $PLUGIN_BUILD_DIR/btrfs.so (configure with libbtrfsutil-dev installed)"
ok "plugins --json" --json plugins
python3 - "$OUT" <<'EOF' || fail "snapctl plugins --json: btrfs is missing, unavailable or lacks its capabilities"
import json, sys
b = [p for p in json.load(open(sys.argv[1])) if p["name"] == "btrfs"]
assert b and b[0]["available"], b
for c in ("internal", "revert-keeps-newer", "delete-any", "list"):
    assert c in b[0]["capabilities"], (c, b)
EOF
note "btrfs plugin loaded and available"

truncate -s 1G "$T/btrfs.img"
mkfs.btrfs -q "$T/btrfs.img" >"$T/mkfs.log" 2>&1 || { cat "$T/mkfs.log"; fail "mkfs.btrfs failed"; }
M=$T/mnt
mount_img "$T/btrfs.img" "$M"
[ "$(stat -f -c %T "$M")" = btrfs ] || fail "$M is not a btrfs after mounting"
DEV=$(findmnt -n -o SOURCE "$M")

# tree_sum DIR: one checksum of every file's name and content under DIR.
tree_sum() {
  (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r openssl dgst -sha256 -r) |
    openssl dgst -sha256 -r | cut -d' ' -f1
}
subvols() { btrfs subvolume list "$M" | awk '{print $NF}' | sort | tr '\n' ' '; }
snap_of() { echo "$M/.vmsnap/$1/$(basename "$2")/vmsnap-$3"; }
# data DOMAIN SNAPSHOT KEY: a value of the disk's backend data.
data() {
  sc --json info "$1" "$2"
  [ "$RC" = 0 ] || { show_output; fail "snapctl info $1 $2 exited $RC"; }
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["disks"][0]["data"].get(sys.argv[2], "-"))' "$OUT" "$3"
}
subvol_id() { btrfs inspect-internal rootid "$1"; }
assert_no_staging() {
  local l
  l=$(find "$M" -maxdepth 1 -name '.*.vmsnap-revert-*' -print)
  [ -z "$l" ] || fail "$1: staging subvolume left behind: $l"
}

V=$M/vm1
btrfs subvolume create "$V" >/dev/null
make_dense "$V/disk.raw" 64 d0
echo "config v0" >"$V/vm.conf"
sum0=$(tree_sum "$V")

# ---- create / modify / revert / branch / delete ---------------------------------
ok "create s1" create web --disk "vda=$V" --name s1
S1=$(snap_of web "$V" s1)
[ "$(btrfs property get -ts "$S1" ro)" = "ro=true" ] || fail "$S1 is not a read-only snapshot"
assert_eq "$(data web s1 subvol)" "$S1" "recorded subvolume path"
assert_eq "$(data web s1 subvol-id)" "$(subvol_id "$S1")" "recorded subvolume id"
assert_eq "$(data web s1 source-id)" "$(subvol_id "$V")" "recorded source id"
assert_eq "$(tree_sum "$S1")" "$sum0" "s1's content"
sc --json info web s1
assert_eq "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["disks"][0]["backend"])' "$OUT")" btrfs "backend chosen for a subvolume"

scribble "$V/disk.raw" 8 4 w1
echo "config v1" >"$V/vm.conf"
sum1=$(tree_sum "$V")
ok "create s2" create web --name s2
S2=$(snap_of web "$V" s2)
scribble "$V/disk.raw" 32 8 w2
rm "$V/vm.conf"
sum2=$(tree_sum "$V")
[ "$sum0" != "$sum1" ] && [ "$sum1" != "$sum2" ] || fail "writes did not change the subvolume"
old_id=$(subvol_id "$V")

ok "revert to s1" revert web s1
err_has "cleaner" "revert says the old state's space comes back through the cleaner"
assert_eq "$(tree_sum "$V")" "$sum0" "the disk after revert to s1"
assert_eq "$(tree_sum "$S2")" "$sum1" "s2 (newer) after revert to s1"
assert_eq "$(tree_sum "$S1")" "$sum0" "s1 after revert to it"
new_id=$(subvol_id "$V")
[ "$new_id" != "$old_id" ] || fail "the live subvolume kept its id $old_id across a revert"
assert_eq "$(data web s1 live-id)" "$new_id" "live-id recorded after the revert"
[ "$(btrfs property get -ts "$V" ro)" = "ro=false" ] || fail "the reverted subvolume is read-only"
assert_no_staging "revert to s1"
note "create, modify, revert (new live id $old_id -> $new_id), newer snapshot kept"

# Branch: from s1, new writes and a snapshot s3; back to s2, then to s3.
echo "branch" >"$V/branch.txt"
sum3=$(tree_sum "$V")
ok "create s3 on the branch" create web --name s3
S3=$(snap_of web "$V" s3)
ok "revert to s2 (other branch)" revert web s2
assert_eq "$(tree_sum "$V")" "$sum1" "the disk after revert to s2"
ok "revert to s3" revert web s3
assert_eq "$(tree_sum "$V")" "$sum3" "the disk after revert to s3"
assert_eq "$(names web)" "s1 s2 s3" "snapshots after branching"

# Delete any: the middle one, then check the others still read the same.
ok "delete s2" delete web s2
err_has "cleaner" "delete says space is freed later by the cleaner"
[ ! -e "$S2" ] || fail "delete left $S2"
assert_eq "$(tree_sum "$S1")" "$sum0" "s1 after deleting s2"
assert_eq "$(tree_sum "$S3")" "$sum3" "s3 after deleting s2"
assert_eq "$(tree_sum "$V")" "$sum3" "the disk after deleting s2"
assert_eq "$(names web)" "s1 s3" "snapshots after deleting s2"
expect 3 "delete s2 again" -- delete web s2
ok "revert to s1 after deleting s2" revert web s1
assert_eq "$(tree_sum "$V")" "$sum0" "the disk after revert to s1 (s2 gone)"
note "branching reverts and delete of any snapshot keep every checksum"

# A subvolume vanished behind vmsnap's back: the delete still succeeds.
btrfs subvolume delete "$S3" >/dev/null
ok "delete s3 whose subvolume is already gone" delete web s3
# A foreign subvolume put where a snapshot was recorded is never deleted.
ok "create s4" create web --name s4
S4=$(snap_of web "$V" s4)
btrfs subvolume delete "$S4" >/dev/null
btrfs subvolume create "$S4" >/dev/null
ok "delete s4 (a foreign subvolume took its path)" delete web s4
[ -d "$S4" ] || fail "delete removed $S4, which vmsnap did not make"
err_has "not the subvolume this snapshot made" "the warning names the foreign subvolume"
btrfs subvolume delete "$S4" >/dev/null
note "delete is idempotent and never removes a subvolume vmsnap did not make"

# ---- list: foreign snapshots --------------------------------------------------------
btrfs subvolume snapshot -r "$V" "$M/by-hand" >/dev/null
ok "list with a foreign snapshot" list web
grep -q "by-hand (foreign)" "$OUT" || { show_output; fail "a snapshot made with btrfs(8) is not listed as foreign"; }
grep -q "^s1" "$OUT" || { show_output; fail "s1 missing from list"; }
grep -c "foreign" "$OUT" | grep -qx 1 || { show_output; fail "vmsnap's own snapshot listed as foreign"; }
btrfs subvolume delete "$M/by-hand" >/dev/null
note "list: vmsnap's snapshots accounted for, a btrfs(8) snapshot shown as foreign"

# ---- file=DIR ------------------------------------------------------------------------
W=$M/vm2
btrfs subvolume create "$W" >/dev/null
make_dense "$W/disk.raw" 8 w
mkdir "$M/snaps"
ok "create with file=DIR" create fdom --disk "vda=$W,file=$M/snaps" --name a
[ -d "$M/snaps/vmsnap-a" ] || fail "file=$M/snaps: no snapshot vmsnap-a there"
expect 2 "file= on another filesystem" -- create fdom2 --disk "vda=$W,file=$T" --name a
err_has "not on the btrfs" "file= elsewhere says why"
scribble "$W/disk.raw" 0 1 x
ok "revert with file=" revert fdom a
assert_eq "$(sha "$W/disk.raw")" "$(sha "$M/snaps/vmsnap-a/disk.raw")" "the disk after revert (file=)"
ok "delete with file=" delete fdom a
[ ! -e "$M/snaps/vmsnap-a" ] || fail "delete left $M/snaps/vmsnap-a"
[ -d "$M/snaps" ] || fail "delete removed the user's file= directory"
note "file=DIR: snapshots in a directory of the same btrfs, refused elsewhere"

# ---- bad input -------------------------------------------------------------------
mkdir "$M/plain"
expect 7 "a plain directory" -- create bad --disk "vda=$M/plain" --name a
err_has "not a btrfs subvolume" "a plain directory is refused with the reason"
expect 3 "a missing path" -- create bad --disk "vda=$M/nothere" --name a
echo data >"$M/file.raw"
ok "a plain file on btrfs goes to dd" create plainfile --disk "vda=$M/file.raw" --name a
sc --json info plainfile a
grep -q '"backend": "dd"' "$OUT" || { show_output; fail "a plain file on btrfs was not given to dd"; }
ok "create s5 for the refusal checks" create web --name s5
expect 9 "a taken name" -- create web --name s5
note "bad input refused: not a subvolume, missing path, taken name; a file goes to dd"

# ---- nested subvolume ------------------------------------------------------------
before=$(subvols)
btrfs subvolume create "$V/inner" >/dev/null
expect 7 "create with a nested subvolume" -- create web --name nested
err_has "nested subvolume .*inner" "the refusal names the nested subvolume"
expect 7 "revert with a nested subvolume" -- revert web s5
err_has "inner" "the revert refusal names the nested subvolume"
btrfs subvolume delete "$V/inner" >/dev/null
assert_eq "$(subvols)" "$before" "subvolumes after the nested refusals"
assert_no_journal web "nested"
note "nested subvolume refused (named), nothing changed"

# ---- busy: a process holds a file open ---------------------------------------------
sumb=$(tree_sum "$V")
(exec 7<"$V/disk.raw"; exec sleep 300) &
HOLDER=$!
it_on_cleanup "kill $HOLDER"
sleep 0.2
expect 4 "revert while a process holds a file open" -- revert web s1
err_has "process $HOLDER .*open" "the refusal names the process"
assert_eq "$(tree_sum "$V")" "$sumb" "the disk after the busy refusal"
assert_no_journal web "busy"
ok "create while busy (an atomic snapshot)" create web --name busy1
ok "forced revert while busy" revert web s1 --force
assert_eq "$(tree_sum "$V")" "$sum0" "the disk after the forced revert"
kill "$HOLDER"
wait "$HOLDER" 2>/dev/null || true
note "busy subvolume: revert refused with exit 4 naming the process, --force reverts"

# ---- mount point ------------------------------------------------------------------
mkdir -p "$T/vm1mnt"
mount -o "subvol=vm1" "$DEV" "$T/vm1mnt" || fail "mount -o subvol=vm1 failed"
it_on_cleanup "umount $T/vm1mnt"
expect 4 "revert of a mounted subvolume" -- revert web s5
err_has "mounted at $T/vm1mnt.*unmount" "the refusal says where it is mounted and what to do"
assert_no_journal web "mount point"
umount "$T/vm1mnt"
ok "revert after unmounting" revert web s5
note "a mounted subvolume: refused (exit 4) with how to revert it"

# ---- read-only filesystem ---------------------------------------------------------
sumr=$(tree_sum "$V")
mount -o remount,ro "$M"
expect 7 "create on a read-only btrfs" -- create web --name ro
err_has "read-only.*remount" "create says the filesystem is read-only"
expect 7 "revert on a read-only btrfs" -- revert web s1
expect 7 "delete on a read-only btrfs" -- delete web s5
assert_no_journal web "read-only"
mount -o remount,rw "$M"
assert_eq "$(names web)" "s1 s5 busy1" "snapshots after the read-only refusals"
assert_eq "$(tree_sum "$V")" "$sumr" "the disk after the read-only refusals"
note "read-only filesystem: create, revert and delete refused, nothing changed"

# ---- no space ----------------------------------------------------------------------
sync
i=0
while :; do
  avail=$(stat -f -c '%a*%S' "$M")
  avail=$((avail))
  [ "$avail" -ge $((2 << 20)) ] || break
  fallocate -l $((avail > (64 << 20) ? avail / 2 : avail - (1 << 20))) "$M/fill.$i" 2>/dev/null || break
  i=$((i + 1))
  [ $i -lt 64 ] || break
  sync
done
before=$(subvols)
expect 6 "create on a full btrfs" -- create web --name full
err_has "free" "the refusal says how much is free"
assert_eq "$(subvols)" "$before" "subvolumes after the no-space refusal"
assert_no_journal web "no space"
rm -f "$M"/fill.*
sync
btrfs filesystem sync "$M" >/dev/null
ok "create after freeing space" create web --name roomy
note "no space: refused with exit 6 before anything was made"

# ---- crashes at every journal step, then recover ------------------------------------
crash() { # crash POINT ARGS...: snapctl dies at POINT
  local point=$1
  shift
  RC=0
  VMSNAP_CRASHPOINT=$point "$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" \
    --progress none "$@" >"$OUT" 2>"$ERR" || RC=$?
  [ "$RC" != 0 ] || fail "$point: snapctl $* did not crash"
}
for point in create:journaled create:disks-made create:domain-written; do
  before=$(subvols)
  crash "$point" create web --name c
  expect 8 "$point: another create before recover" -- create web --name c2
  ok "$point: recover" recover web
  assert_eq "$(subvols)" "$before" "$point + recover: subvolumes"
  assert_eq "$(names web)" "s1 s5 busy1 roomy" "$point + recover: recorded snapshots"
  assert_no_journal web "$point"
done
note "crashes inside create before its document rolled back by recover"
# Past its commit record (the snapshot's document) the create is kept.
before=$(subvols)
crash create:metadata-written create web --name c
ok "create:metadata-written: recover" recover web
err_has 'kept' "create:metadata-written: recover says it kept the snapshot"
assert_eq "$(names web)" "s1 s5 busy1 roomy c" "create:metadata-written + recover: recorded snapshots"
assert_no_journal web "create:metadata-written"
ok "create:metadata-written: delete the kept snapshot" delete web c
assert_eq "$(subvols)" "$before" "create:metadata-written + recover + delete: subvolumes"
note "a create killed after its document: recover kept it, delete removed its subvolume"

ok "revert to roomy" revert web roomy
sumroomy=$(tree_sum "$V")
for point in revert:journaled revert:staged; do
  crash "$point" revert web s1
  ok "$point: recover" recover web
  assert_eq "$(tree_sum "$V")" "$sumroomy" "$point + recover: the disk is as before"
  assert_no_staging "$point + recover"
  assert_no_journal web "$point"
done
for point in revert:finishing revert:finished; do
  ok "back to roomy" revert web roomy
  id_before=$(subvol_id "$V")
  crash "$point" revert web s1
  ok "$point: recover" recover web
  assert_eq "$(tree_sum "$V")" "$sum0" "$point + recover: the disk is s1's"
  [ "$(subvol_id "$V")" != "$id_before" ] || fail "$point + recover: the live subvolume was not swapped"
  assert_no_staging "$point + recover"
  assert_eq "$(current web)" s1 "$point + recover: current snapshot"
  assert_eq "$(data web s1 live-id)" "$(subvol_id "$V")" "$point + recover: live-id"
  assert_no_journal web "$point"
done
note "crashes inside revert: staged ones rolled back, finishing ones completed"

for point in delete:journaled delete:objects-removed; do
  ok "create d for $point" create web --name d
  crash "$point" delete web d
  ok "$point: recover" recover web
  [ ! -e "$(snap_of web "$V" d)" ] || fail "$point + recover: the snapshot's subvolume is left"
  assert_eq "$(names web)" "s1 s5 busy1 roomy" "$point + recover: recorded snapshots"
done
assert_eq "$(tree_sum "$S1")" "$sum0" "s1 after all the crashes"
note "crashes inside delete finished by recover"

# Everything goes; the per-domain directory with it.
for s in s1 s5 busy1 roomy; do ok "delete $s" delete web "$s"; done
[ ! -e "$M/.vmsnap/web" ] || fail "the snapshot directory $M/.vmsnap/web is left after the last delete"
assert_eq "$(tree_sum "$V")" "$sum0" "the disk after deleting every snapshot"
it_done
