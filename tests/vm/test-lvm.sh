#!/usr/bin/env bash
# test-lvm.sh — the LVM backend on real LVM, run INSIDE the test guest
# (this host's kernel has no device-mapper):
#
#   tests/vm/run-in-guest.sh --disk lvm:1024 -- \
#     env SNAPCTL=$PWD/build/bin/snapctl BUILD_DIR=$PWD/build SOURCE_DIR=$PWD \
#     PLUGIN_BUILD_DIR=$PWD/build/lib/vmsnap/plugins bash tests/vm/test-lvm.sh
#
# It takes the whole disk $LVM_TEST_DISK (default /dev/vdb, at least 1 GiB,
# wiped), makes a volume group on it with a classic LV and a thin pool with
# a thin LV, and drives snapctl through: patterned data, snapshot,
# overwrite, revert, checksums (classic and thin); thin branching; delete;
# the VG-full refusal; an overflowed classic snapshot reported and refused;
# the siblings-would-overflow refusal; merge progress; cancel during a
# merge; kill -9 inside create, then recover; a crash in the middle of a
# thin revert's renames, then recover; bad and awkward names; list --json
# with fill percentages. Conventions of tests/integration/lib.sh: fail
# loudly, never skip.
. "$(dirname "$0")/../integration/lib.sh"
it_init test-lvm
need_tool lvm pvcreate vgcreate lvcreate lvs vgremove dmsetup
[ -e /dev/mapper/control ] || fail "no /dev/mapper/control: this kernel has no device-mapper (run this inside the guest: tests/vm/run-in-guest.sh)"
[ -f "$PLUGIN_BUILD_DIR/lvm.so" ] || fail "no lvm plugin at $PLUGIN_BUILD_DIR/lvm.so"
# Without udev, LVM makes its own /dev nodes (else lvcreate fails: "device not cleared").
pgrep -x systemd-udevd >/dev/null 2>&1 || export DM_DISABLE_UDEV=1
export LVM_SUPPRESS_FD_WARNINGS=1

DISK=${LVM_TEST_DISK:-/dev/vdb}
[ -b "$DISK" ] || fail "$DISK is not a block device: give the guest a test disk (--disk lvm:1024)"
VG=vmsnaptest
vgs "$VG" >/dev/null 2>&1 && fail "a volume group $VG exists already; this test makes its own"
wipefs -qa "$DISK" >/dev/null 2>&1 || true
lvm pvcreate -qq -y "$DISK" >/dev/null || fail "pvcreate $DISK failed"
it_on_cleanup "lvm pvremove -qq -ff -y $DISK"
lvm vgcreate -qq -s 4M "$VG" "$DISK" >/dev/null || fail "vgcreate failed"
it_on_cleanup "lvm vgremove -qq -ff -y $VG"
lvm lvcreate -qq -L 128M -n cl "$VG" >/dev/null
lvm lvcreate -qq -L 256M -T "$VG/pool" >/dev/null
lvm lvcreate -qq -V 128M -T "$VG/pool" -n th >/dev/null 2>&1
CL=/dev/$VG/cl TH=/dev/$VG/th

# write DEV MIB OFFSET_MIB SEED: patterned data; digest DEV: its checksum.
write() { prng "$(($2 << 20))" "$4" | dd of="$1" bs=1M seek="$3" conv=notrunc,fsync status=none; }
digest() { sha "$1"; }
lv_exists() { lvm lvs "$VG/$1" >/dev/null 2>&1; }
lv_attr() { lvm lvs --noheadings -o lv_attr "$VG/$1" | tr -d ' '; }
ours_count() { lvm lvs --noheadings -o lv_name -S "lv_tags=vmsnap" "$VG" | grep -c . || true; }
# data_of DOMAIN NAME KEY: a recorded backend data value of the snapshot's disk.
data_of() {
  sc --json info "$1" "$2"
  [ "$RC" = 0 ] || { show_output; fail "info $1 $2 exited $RC"; }
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["disks"][0]["data"].get(sys.argv[2], ""))' "$OUT" "$3"
}

uuid_of() {
  sc --json info "$1" "$2"
  [ "$RC" = 0 ] || { show_output; fail "info $1 $2 exited $RC"; }
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["uuid"])' "$OUT"
}

# ---- classic: snapshot, overwrite, revert (merge), checksums --------------
write "$CL" 64 0 classic-a
A=$(digest "$CL")
ok "classic create" create cl --name s1 --disk vda="$CL"
lv_exists cl-vmsnap-s1 || fail "no LV cl-vmsnap-s1 after create"
[ "$(lvm lvs --noheadings -o lv_tags "$VG/cl-vmsnap-s1" | tr -d ' ')" = "vmsnap,vmsnap-$(uuid_of cl s1)" ] ||
  fail "the snapshot LV does not carry the tags vmsnap and vmsnap-<uuid>"
[ "$(data_of cl s1 kind)" = classic ] || fail "kind is not classic"
# Default size policy: 20% of 128 MiB is below the 64 MiB minimum.
[ "$(data_of cl s1 size)" = $((64 << 20)) ] || fail "default snapshot size is $(data_of cl s1 size), expected 64 MiB"
write "$CL" 16 8 classic-b
B=$(digest "$CL")
[ "$A" != "$B" ] || fail "overwrite did not change the LV"
expect 7 "classic revert without --force (consumes the snapshot)" -- revert cl s1
err_has "used up" "the refusal says the snapshot is used up"
[ "$(digest "$CL")" = "$B" ] || fail "a refused revert changed the disk"
"$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" --progress json revert --force cl s1 \
  >"$OUT" 2>"$T/progress" || { cat "$T/progress"; fail "classic revert --force failed"; }
[ "$(digest "$CL")" = "$A" ] || fail "classic revert: checksum differs from the snapshot's"
grep -q "merged $VG/cl-vmsnap-s1 into $VG/cl now" "$T/progress" || { cat "$T/progress"; fail "the result does not say the merge ran now"; }
# Real merge progress, read from the snapshot-merge target in bytes (16 MiB
# were written back; dm counts 14-16 MiB of COW chunks): a first report of
# at least 8 MiB left to merge, and a last
# one that is complete. A mid-way report shows only when the merge outlasts
# a poll; it is printed, not required (a fast disk merges 16 MiB at once).
python3 - "$T/progress" <<'EOF' || { cat "$T/progress"; fail "no merge progress was reported"; }
import json, sys
mid = started = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"): continue
    p = json.loads(line)
    if p["done"] == 0 and p["total"] >= 8 << 20: started = 1
    if 0 < p["done"] < p["total"]: mid = 1
    last = p
print("merge progress: %s" % ("with mid-way reports" if mid else "start and end only"))
sys.exit(0 if started and last["total"] >= 8 << 20 and last["done"] == last["total"] else 1)
EOF
# The reverted point is kept: a fresh snapshot of the same name.
lv_exists cl-vmsnap-s1 || fail "the reverted point was not kept as a fresh snapshot"
[ "$(data_of cl s1 merge)" = done ] || fail "merge is not recorded as done"
write "$CL" 4 0 classic-c
ok "revert to the kept point" revert --force cl s1
[ "$(digest "$CL")" = "$A" ] || fail "revert to the kept point: checksum differs"
note "classic: snapshot, overwrite, revert by merge with progress, point kept"

# ---- a merge that waits for the origin's next activation (origin open) --
write "$CL" 8 32 classic-d
D=$(digest "$CL")
exec {holder}<"$CL"
expect 0 "revert --force of an open classic origin" -- revert --force cl s1
err_has "next activation" "the result says the merge waits for the next activation"
[ "$(lv_attr cl-vmsnap-s1 | cut -c1)" = S ] || fail "the snapshot is not marked merging: $(lv_attr cl-vmsnap-s1)"
[ "$(data_of cl s1 merge)" = pending ] || fail "merge is not recorded as pending"
exec {holder}<&-
# Merge pending: LVM refuses new snapshots of the origin; vmsnap says why.
expect 4 "create while a merge is pending" -- create cl --name s2
err_has "merge .*pending" "the refusal names the pending merge"
[ "$(digest "$CL")" = "$D" ] || fail "the disk changed before the merge ran"
{ lvm lvchange -qq -an "$VG/cl" && lvm lvchange -qq -ay "$VG/cl"; } || fail "re-activating $VG/cl failed"
for _ in $(seq 50); do lv_exists cl-vmsnap-s1 || break; sleep 0.2; done
lv_exists cl-vmsnap-s1 && fail "the merge did not run on re-activation"
[ "$(digest "$CL")" = "$A" ] || fail "after the deferred merge the checksum differs"
expect 3 "revert to a snapshot a merge used up" -- revert --force cl s1
err_has "used up" "the refusal says the snapshot was used up"
ok "delete a used-up snapshot" delete cl s1
note "classic: open origin, merge on next activation, merge-pending refusal"

# ---- siblings would overflow: refused; delete -------------------------------
write "$CL" 40 0 sib-a
ok "create a" create cl --name a
write "$CL" 40 0 sib-b # 40 MiB into a's COW
ok "create b" create cl --name b
write "$CL" 40 0 sib-c # b takes 40 MiB (a has those chunks already)
expect 6 "revert to a when b would overflow" -- revert --force cl a
err_has "would overflow" "the refusal names the sibling that would overflow"
err_has "cl-vmsnap-b" "the refusal names b"
ok "delete b" delete cl b
lv_exists cl-vmsnap-b && fail "delete left the LV cl-vmsnap-b"
ok "revert to a now" revert --force cl a
[ "$(digest "$CL")" = "$(prng $((40 << 20)) sib-a | cat - <(dd if="$CL" bs=1M skip=40 status=none) | openssl dgst -sha256 -r | cut -d' ' -f1)" ] ||
  fail "revert to a: checksum differs"
ok "delete a" delete cl a
note "classic: siblings' free COW space checked; delete"

# ---- an overflowed classic snapshot: reported, never reverted to -------------
lvm lvcreate -qq -L 96M -n big "$VG" >/dev/null
write "/dev/$VG/big" 8 0 big-a
# Per-disk backend options: a bad size and an unknown key change nothing.
expect 2 "size= that is not a size" -- create big --name o --disk vda="/dev/$VG/big",size=lots
err_has "size=" "the refusal names size="
expect 2 "an option lvm does not take" -- create big --name o --disk vda="/dev/$VG/big",sise=1G
err_has "takes no option 'sise' \\(it takes: size=\\)" "the refusal names the keys lvm takes"
ok "create of big with size=16M" create big --name o --disk vda="/dev/$VG/big",size=16M
[ "$(data_of big o size)" = $((16 << 20)) ] || fail "size=16M gave $(data_of big o size) bytes"
write "/dev/$VG/big" 24 0 big-b # more than its 16 MiB of COW space
[ "$(lv_attr big-vmsnap-o | cut -c5)" = I ] || fail "the snapshot did not overflow: $(lv_attr big-vmsnap-o)"
sc --json list big
python3 - "$OUT" <<'PY' || { show_output; fail "list --json does not report the overflowed snapshot as INVALID"; }
import json, sys
d = [s for s in json.load(open(sys.argv[1])) if s["name"] == "o"][0]
st = d["disks"][0].get("status", {})
sys.exit(0 if "INVALID" in st.get("note", "") else 1)
PY
expect 7 "revert to an overflowed snapshot" -- revert --force big o
err_has "overflowed" "the refusal says it overflowed"
ok "delete the overflowed snapshot" delete big o
lvm lvremove -qq -f "$VG/big" >/dev/null
note "classic: overflowed snapshot reported INVALID and refused"

# ---- VG full: refused before anything is made -------------------------------
lvm lvcreate -qq -l 100%FREE -n filler "$VG" >/dev/null
n0=$(ours_count)
expect 6 "classic snapshot with the VG full" -- create cl --name full
err_has "has .* free" "the refusal says how much is free"
err_has "vgextend" "the refusal says what to do"
[ "$(ours_count)" = "$n0" ] || fail "a refused create left an LV"
assert_no_journal cl "VG full"
lvm lvremove -qq -f "$VG/filler" >/dev/null
note "classic: VG full refused with the space needed and free"

# ---- thin: snapshot, revert by branching (newer snapshots kept) -----------
write "$TH" 32 0 thin-a
TA=$(digest "$TH")
ok "thin create a" create th --name a --disk vda="$TH"
[ "$(data_of th a kind)" = thin ] || fail "kind is not thin"
[ "$(lv_attr th-vmsnap-a | cut -c10)" = k ] || fail "a thin snapshot should skip activation like LVM's own"
write "$TH" 16 8 thin-b
TB=$(digest "$TH")
ok "thin create b" create th --name b
write "$TH" 16 40 thin-c
U0=$(lvm lvs --noheadings -o lv_uuid "$VG/th" | tr -d ' ')
ok "thin revert to a (no --force: newer snapshots survive)" revert th a
[ "$(digest "$TH")" = "$TA" ] || fail "thin revert to a: checksum differs"
U1=$(lvm lvs --noheadings -o lv_uuid "$VG/th" | tr -d ' ')
[ "$U0" != "$U1" ] || fail "the thin origin kept its uuid: was it really replaced?"
[ "$(data_of th a origin-uuid)" = "$U1" ] || fail "a's origin-uuid was not updated"
[ "$(data_of th b origin-uuid)" = "$U1" ] || fail "b's origin-uuid was not updated (set_other)"
[ "$(lv_attr th | cut -c10)" != k ] || fail "the new origin skips activation (lvchange -kn missing)"
if lvm lvs --noheadings -o lv_name "$VG" | grep -Eq 'vmsnap-(old|rv)-'; then fail "a revert helper LV was left behind"; fi
ok "thin revert to b (a branch)" revert th b
[ "$(digest "$TH")" = "$TB" ] || fail "thin revert to b: checksum differs"
ok "thin revert to a again" revert th a
[ "$(digest "$TH")" = "$TA" ] || fail "thin revert to a again: checksum differs"
ok "thin delete a" delete th a
lv_exists th-vmsnap-a && fail "delete left th-vmsnap-a"
ok "thin revert to b after a is gone" revert th b
[ "$(digest "$TH")" = "$TB" ] || fail "thin revert to b after deleting a: checksum differs"
note "thin: revert by branching keeps newer snapshots; uuid update; delete any"

# ---- a crash in the middle of the thin revert, then recover ----------------
for point in revert:staged revert:finishing revert:finished; do
  write "$TH" 8 0 "thin-$point"
  VMSNAP_CRASHPOINT=$point sc revert th b
  [ "$RC" != 0 ] || fail "crashpoint $point did not stop the revert"
  expect 8 "an op after the crash at $point" -- create th --name x
  ok "recover after $point" recover th
  assert_no_journal th "recover after $point"
  if lvm lvs --noheadings -o lv_name "$VG" | grep -Eq 'vmsnap-(rv|old)-'; then fail "recover after $point left a helper LV"; fi
  lv_exists th || fail "after $point the disk's LV is gone"
  if [ "$point" = revert:staged ]; then
    [ "$(digest "$TH")" != "$TB" ] || fail "a revert rolled back by recover changed the disk"
  else
    [ "$(digest "$TH")" = "$TB" ] || fail "the revert finished by recover after $point: checksum differs"
  fi
done
note "thin: revert crashed before and after its point of no return, recovered"

# ---- kill -9 inside create, then recover ----------------------------------
# Rolled back before the snapshot's document (the commit record) is in
# place, kept after.
for point in create:journaled create:disks-made create:domain-written; do
  n0=$(ours_count)
  VMSNAP_CRASHPOINT=$point sc create th --name crash
  [ "$RC" != 0 ] || fail "crashpoint $point did not stop the create"
  ok "recover after $point" recover th
  [ "$(ours_count)" = "$n0" ] || fail "recover after $point left the snapshot LV"
  assert_no_journal th "recover after $point"
done
n0=$(ours_count)
VMSNAP_CRASHPOINT=create:metadata-written sc create th --name crash
[ "$RC" != 0 ] || fail "crashpoint create:metadata-written did not stop the create"
ok "recover after create:metadata-written" recover th
err_has 'kept' "recover after create:metadata-written says it kept the snapshot"
[ "$(ours_count)" = "$((n0 + 1))" ] || fail "recover after create:metadata-written did not keep the snapshot LV"
assert_no_journal th "recover after create:metadata-written"
ok "delete the kept snapshot" delete th crash
[ "$(ours_count)" = "$n0" ] || fail "delete of the kept snapshot left its LV"
# A real kill -9 at an arbitrary moment of a classic create.
n0=$(ours_count)
"$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" --progress none create cl --name k9 >/dev/null 2>&1 &
pid=$!
sleep 0.4
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
ok "recover after kill -9" recover cl
if [ "$(names cl)" = k9 ]; then
  lv_exists cl-vmsnap-k9 || fail "k9 is recorded but its LV is missing"
  ok "delete k9" delete cl k9
else
  [ "$(ours_count)" = "$n0" ] || fail "kill -9 and recover left an LV of a snapshot that is not recorded"
fi
note "kill -9 inside create, then recover"

# ---- cancel during a merge: not cancellable past the point of no return -----
write "$CL" 32 0 cancel-a
CA=$(digest "$CL")
ok "create m" create cl --name m
write "$CL" 32 0 cancel-b
"$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" --progress json revert --force cl m \
  >"$OUT" 2>"$T/cancel" &
pid=$!
# Cancel once the merge runs (progress in bytes): it completes anyway.
for _ in $(seq 200); do grep -q '"total":[1-9]' "$T/cancel" 2>/dev/null && break; sleep 0.05; done
kill -INT "$pid" 2>/dev/null || true
rc=0
wait "$pid" || rc=$?
if [ "$rc" = 0 ]; then
  [ "$(digest "$CL")" = "$CA" ] || fail "a merge that went on after cancel: checksum differs"
elif [ "$rc" = 5 ]; then
  [ "$(lv_attr cl-vmsnap-m | cut -c1)" = s ] || fail "a cancelled revert left the snapshot merging"
else
  cat "$T/cancel"
  fail "revert cancelled during the merge exited $rc"
fi
ok "delete m" delete cl m
note "cancel during a merge: the merge completes (documented), or nothing changed"

# ---- bad and awkward names ---------------------------------------------------
expect 2 "a snapshot name with '/'" -- create th --name a/b
ok "a name with a space" create th --name "before upgrade"
lv_exists "th-vmsnap-before+20upgrade" || fail "the name with a space is not encoded as +20"
ok "a name with an LVM-reserved infix" create th --name x_tdata
lv_exists "th-vmsnap-x+5Ftdata" || fail "the reserved infix _tdata is not escaped"
long=$(printf 'L%.0s' $(seq 1 200))
ok "a 200-byte name" create th --name "$long"
lvn=$(data_of th "$long" lv)
[ ${#lvn} -le 120 ] || fail "the long name's LV ${lvn} is longer than LVM allows"
lv_exists "${lvn#*/}" || fail "the long name's LV ${lvn} is missing"
sc --json list th
python3 - "$OUT" <<'PY' || { show_output; fail "list --json lacks a name or a fill %"; }
import json, sys
docs = json.load(open(sys.argv[1]))
names = {d["name"] for d in docs}
assert {"b", "before upgrade", "x_tdata"} <= names, names
assert not any(d.get("foreign") for d in docs), [d["name"] for d in docs if d.get("foreign")]
for d in docs:
    note = (d["disks"][0].get("status") or {}).get("note", "")
    assert "fill" in note or "inactive" in note, (d["name"], note)
PY
for n in "before upgrade" x_tdata "$long"; do ok "delete $n" delete th "$n"; done
# Not an LV: backend=lvm says why.
modprobe loop 2>/dev/null || true
truncate -s 64M "$T/plain.img"
loop_attach "$T/plain.img" LOOP
expect 7 "backend=lvm on a loop device" -- create plain --name p --disk vda="$LOOP",backend=lvm
# Foreign snapshots are listed as such and never touched.
lvm lvcreate -qq -s -n foreign "$VG/th" >/dev/null
sc --json list th
python3 - "$OUT" <<'PY' || { show_output; fail "a foreign snapshot is not listed as foreign"; }
import json, sys
f = [d for d in json.load(open(sys.argv[1])) if d.get("foreign")]
assert any("foreign" in d["name"] for d in f), f
PY
ok "delete b" delete th b
lv_exists foreign || fail "a foreign snapshot was touched"
note "names: refused, encoded, escaped, shortened; foreign snapshots listed"

it_done
