#!/bin/bash
# test-qcow2-external.sh — the qcow2 backend's offline external snapshots,
# on real images made, written and read with qemu-img and qemu-io:
#   create keeps the disk's path (the frozen image moves into the layer
#   directory, a new overlay takes the path), owner and mode kept;
#   revert makes a fresh overlay on the snapshot (newer snapshots survive,
#   branches stay intact) and every snapshot's data is checked by reverting
#   to it and comparing with a copy taken when it was made;
#   delete of a middle layer, of a branch point (kept as an unnamed layer
#   until one child is left, then merged), of a leaf, of the last one: no
#   other snapshot and no current image loses a byte, no file is left;
#   internal and external snapshots mixed: an internal snapshot in a frozen
#   layer is not reverted (it would corrupt the overlays), but deleted;
#   a chain changed behind vmsnap's back is refused, nothing changed;
#   an image held by another process, a truncated image, a block device,
#   file=, a full filesystem: clear error, nothing changed;
#   SIGINT while the delete streams a layer into its child: exit 5, the
#   chain as before; SIGINT during a commit: the commit finishes (the
#   snapshot's own layer is being overwritten), data intact;
#   kill -9 during a commit, then recover; create, revert and delete killed
#   at each journal step (VMSNAP_CRASHPOINT), then recover.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
it_init test-qcow2-external
need_tool qemu-img qemu-io mkfifo losetup pgrep
[ -f "$PLUGIN_BUILD_DIR/qcow2.so" ] || fail "no qcow2 plugin at $PLUGIN_BUILD_DIR/qcow2.so"

# ---- helpers ------------------------------------------------------------------
# names DOMAIN: the snapshots vmsnap recorded ("-" for none); unlike lib.sh's
# it leaves out what list shows as foreign (here: unnamed layers).
names() {
  sc --json list "$1"
  [ "$RC" = 0 ] || { show_output; fail "snapctl --json list $1 exited $RC"; }
  python3 -c '
import json, sys
n = [d["name"] for d in json.load(open(sys.argv[1])) if not d.get("foreign")]
print(" ".join(n) if n else "-")' "$OUT"
}
new_image() { qemu-img create -q -f qcow2 "$1" "${2:-64M}" || fail "qemu-img create $1 failed"; }

write_pat() { # write_pat IMG PATTERN [OFFSET [LEN]]
  qemu-io -f qcow2 -c "write -P $2 ${3:-0} ${4:-1M}" "$1" >"$T/qemu-io.out" 2>&1 ||
    { cat "$T/qemu-io.out" >&2; fail "qemu-io could not write pattern $2 into $1"; }
}

read_pat() { # read_pat IMG PATTERN WHAT [OFFSET [LEN]]
  local out
  out=$(qemu-io -f qcow2 -c "read -P $2 ${4:-0} ${5:-1M}" "$1" 2>&1) ||
    fail "$3: qemu-io read of $1 failed: $out"
  ! grep -q "Pattern verification failed" <<<"$out" || fail "$3: $1 does not hold pattern $2"
  grep -q "read [0-9]*/[0-9]* bytes" <<<"$out" || fail "$3: qemu-io read of $1: $out"
}

qcheck() { # qcheck IMG WHAT: qemu-img check finds nothing, not even leaks
  local out
  out=$(qemu-img check -f qcow2 "$1" 2>&1) || fail "$2: qemu-img check -f qcow2 $1 is not clean: $out"
}

# The guest's view of IMG kept as a standalone image: what a snapshot held.
keep_view() { qemu-img convert -f qcow2 -O qcow2 "$1" "$2" || fail "cannot copy the view of $1"; }
same_view() { # same_view IMG REF WHAT
  local out
  out=$(qemu-img compare -f qcow2 -F qcow2 "$1" "$2" 2>&1) || fail "$3: $1 differs from $2: $out"
}

backing_of() {
  qemu-img info -f qcow2 -U --output=json "$1" |
    python3 -c 'import json, sys; print(json.load(sys.stdin).get("backing-filename") or "-")'
}
layer_dir() { echo "$(dirname "$(realpath "$1")")/.vmsnap/$(basename "$1")"; }
layer_of() { echo "$(layer_dir "$1")/vmsnap-$2.qcow2"; }
layers() { # the layer files' names, sorted ("-" for none)
  local d l=
  d=$(layer_dir "$1")
  [ ! -d "$d" ] || l=$(find "$d" -mindepth 1 -printf '%f\n' | sort | tr '\n' ' ' | sed 's/ $//')
  echo "${l:--}"
}

# Every snapshot named in "NAME=REF ..." holds the view REF: revert to each
# and compare; then back to where we were (the last one named).
check_all() { # check_all DOMAIN IMG WHAT NAME=REF...
  local dom=$1 img=$2 what=$3 pair
  shift 3
  for pair in "$@"; do
    ok "$what: revert to ${pair%%=*}" revert "$dom" "${pair%%=*}"
    same_view "$img" "${pair#*=}" "$what: snapshot ${pair%%=*}"
    qcheck "$img" "$what: after revert to ${pair%%=*}"
  done
}

# ---- create keeps the disk's path -----------------------------------------------
IMG=$T/vm.qcow2
new_image "$IMG"
chmod 0640 "$IMG"
write_pat "$IMG" 0x11
keep_view "$IMG" "$T/ref-s1.qcow2"
ino=$(stat -c %i "$IMG")
ok "create s1" create vm --name s1 --disk "vda=$IMG,format=qcow2,mode=external"
L1=$(layer_of "$IMG" s1)
[ -f "$L1" ] || fail "create s1: no layer $L1"
assert_eq "$(stat -c %i "$L1")" "$ino" "create s1: the layer is the frozen image itself (inode)"
assert_eq "$(backing_of "$IMG")" "$L1" "create s1: the disk's new overlay is backed by the layer"
assert_eq "$(mode_of "$IMG")" 640 "create s1: the overlay has the disk's mode"
assert_eq "$(mode_of "$(layer_dir "$IMG")")" 700 "create s1: the layer directory's mode"
assert_eq "$(mode_of "$(dirname "$(layer_dir "$IMG")")")" 700 "create s1: .vmsnap's mode"
read_pat "$IMG" 0x11 "create s1: the disk's data through the overlay"
qcheck "$IMG" "after create s1"
qcheck "$L1" "the layer of s1"
sc --json info vm s1
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
d = d[0] if isinstance(d, list) else d
data = d["disks"][0]["data"]
assert data["mode"] == "external" and data["layer"] == sys.argv[2], data
assert data["layer_backing"] == "", data
' "$OUT" "$L1" || { show_output; fail "create s1: recorded backend data"; }

write_pat "$IMG" 0x22 1M
keep_view "$IMG" "$T/ref-s2.qcow2"
ok "create s2" create vm --name s2
write_pat "$IMG" 0x33 2M
keep_view "$IMG" "$T/ref-s3.qcow2"
ok "create s3" create vm --name s3
assert_eq "$(backing_of "$(layer_of "$IMG" s3)")" "$(layer_of "$IMG" s2)" "s3's layer is backed by s2's"
assert_eq "$(layers "$IMG")" "vmsnap-s1.qcow2 vmsnap-s2.qcow2 vmsnap-s3.qcow2" "layers after s3"
ok "list" list vm
out_has "s3\\*" "list marks s3 current"
note "create keeps the disk's path; layers chained"

# ---- revert and branching ---------------------------------------------------------
write_pat "$IMG" 0x99 3M # lost by the revert, as a revert means
ok "revert to s1" revert vm s1
same_view "$IMG" "$T/ref-s1.qcow2" "revert to s1"
assert_eq "$(backing_of "$IMG")" "$L1" "after revert to s1: a fresh overlay on s1"
assert_eq "$(mode_of "$IMG")" 640 "after revert: the overlay keeps the disk's mode"
write_pat "$IMG" 0x44 4M
keep_view "$IMG" "$T/ref-s4.qcow2"
ok "create s4 on the new branch" create vm --name s4
write_pat "$IMG" 0x55 5M
keep_view "$IMG" "$T/ref-now.qcow2"
ok "create s5" create vm --name s5
check_all vm "$IMG" "branches" s3="$T/ref-s3.qcow2" s2="$T/ref-s2.qcow2" s1="$T/ref-s1.qcow2" \
  s4="$T/ref-s4.qcow2" s5="$T/ref-now.qcow2"
note "revert makes a fresh overlay; both branches intact"

# ---- delete -------------------------------------------------------------------------
# Chain now: s1 <- s2 <- s3, s1 <- s4 <- s5 <- disk.
ok "delete s2 (middle of a chain)" delete vm s2
[ ! -e "$(layer_of "$IMG" s2)" ] || fail "delete s2 left its layer"
assert_eq "$(backing_of "$(layer_of "$IMG" s3)")" "$L1" "after delete s2: s3 is backed by s1"
check_all vm "$IMG" "after delete s2" s3="$T/ref-s3.qcow2" s1="$T/ref-s1.qcow2" \
  s4="$T/ref-s4.qcow2" s5="$T/ref-now.qcow2"

ok "delete s1 (two children)" delete vm s1
[ -e "$L1" ] || fail "delete s1: its layer went, though s3 and s4 depend on it"
assert_eq "$(names vm)" "s3 s4 s5" "recorded snapshots after delete s1"
sc --json list vm
python3 -c '
import json, sys
foreign = [(d["name"], d.get("description") or "") for d in json.load(open(sys.argv[1])) if d.get("foreign")]
assert len(foreign) == 1 and foreign[0][0] == "s1", foreign
assert foreign[0][1].startswith("unnamed layer; 2 image(s) depend on it"), foreign
' "$OUT" || { show_output; fail "list: the unnamed layer s1 (and only it) is shown as foreign"; }
check_all vm "$IMG" "after delete s1" s3="$T/ref-s3.qcow2" s4="$T/ref-s4.qcow2" s5="$T/ref-now.qcow2"

ok "delete s3 (a leaf of the other branch)" delete vm s3
[ ! -e "$(layer_of "$IMG" s3)" ] || fail "delete s3 left its layer"
# s1 had s3 and s4; with one child left it is merged away.
[ ! -e "$L1" ] || fail "the unnamed layer s1 stayed with one child"
assert_eq "$(layers "$IMG")" "vmsnap-s4.qcow2 vmsnap-s5.qcow2" "layers after delete s3"
check_all vm "$IMG" "after delete s3" s4="$T/ref-s4.qcow2" s5="$T/ref-now.qcow2"

write_pat "$IMG" 0x66 6M
keep_view "$IMG" "$T/ref-now.qcow2"
ok "delete s5 (under the disk's overlay)" delete vm s5
same_view "$IMG" "$T/ref-now.qcow2" "the disk after delete s5"
ok "delete s4 (the last)" delete vm s4
same_view "$IMG" "$T/ref-now.qcow2" "the disk after delete s4"
assert_eq "$(backing_of "$IMG")" "-" "the disk stands alone again"
assert_eq "$(layers "$IMG")" "-" "no layer left"
assert_eq "$(names vm)" - "recorded snapshots"
assert_eq "$(mode_of "$IMG")" 640 "the disk's mode after the merges"
qcheck "$IMG" "after deleting everything"
assert_no_journal vm "the deletes"
note "delete middle / branch point / leaf / last: every snapshot's data intact"

# ---- with an index: ops read only the documents they touch ---------------------------
# From 32 snapshots the store keeps an index; a delete or revert then reads
# the snapshot's document and its children's, and the rest only when the
# backend asks (its siblings, the chain updates of a merge): the same
# deletes must keep every byte.
IDX=$T/idx.qcow2
new_image "$IDX"
write_pat "$IDX" 1
keep_view "$IDX" "$T/ref-p0.qcow2"
ok "index: p0" create idx --name p0 --disk "vda=$IDX,format=qcow2,mode=external"
for i in $(seq 1 33); do
  [ "$i" != 20 ] || { write_pat "$IDX" 0x20 2M; keep_view "$IDX" "$T/ref-p20.qcow2"; }
  ok "index: p$i" create idx --name "p$i"
done
[ -s "$ST/domains/idx/snapshots/.index" ] || fail "no index with 34 snapshots"
ok "index: revert to p20" revert idx p20
same_view "$IDX" "$T/ref-p20.qcow2" "index: the disk after revert to p20"
write_pat "$IDX" 0x44 4M
keep_view "$IDX" "$T/ref-b1.qcow2"
ok "index: b1 on a branch from p20" create idx --name b1
ok "index: delete p21 (middle)" delete idx p21
ok "index: delete p20 (two children)" delete idx p20
ok "index: delete p33 (a leaf)" delete idx p33
assert_eq "$(names idx | tr ' ' '\n' | grep -c .)" 32 "index: snapshots left"
check_all idx "$IDX" "index" p22="$T/ref-p20.qcow2" p32="$T/ref-p20.qcow2" \
  p19="$T/ref-p0.qcow2" p3="$T/ref-p0.qcow2" b1="$T/ref-b1.qcow2"
assert_no_journal idx "the index deletes"
note "with an index (34 snapshots): delete middle / branch point / leaf and revert keep every byte"

# ---- internal and external mixed ---------------------------------------------------
MIX=$T/mix.qcow2
new_image "$MIX"
write_pat "$MIX" 0x11
ok "internal i1" create mix --name i1 --disk "vda=$MIX,format=qcow2,mode=internal"
write_pat "$MIX" 0x22
ok "external e1" create mix --name e1 --disk "vda=$MIX,format=qcow2,mode=external"
sc --json info mix i1
grep -q "$(layer_of "$MIX" e1)" "$OUT" || { show_output; fail "i1's image did not follow into the layer"; }
expect 7 "revert to an internal snapshot in a frozen layer" -- revert mix i1
err_has "backing file" "the refusal says why"
read_pat "$MIX" 0x22 "the refused revert"
ok "internal i2 in the overlay" create mix --name i2 --disk "vda=$MIX,format=qcow2,mode=internal"
expect 7 "external revert while the disk holds an internal snapshot" -- revert mix e1
err_has "internal snapshot" "the refusal names the internal snapshot"
ok "delete i2" delete mix i2
ok "delete i1 (inside the frozen layer)" delete mix i1
ok "revert to e1" revert mix e1
read_pat "$MIX" 0x22 "revert to e1"
ok "delete e1" delete mix e1
read_pat "$MIX" 0x22 "after delete e1"
qcheck "$MIX" "mixed"
note "internal and external mixed"

# ---- a chain changed behind vmsnap's back -----------------------------------------
TAM=$T/tamper.qcow2
new_image "$TAM"
ok "t1" create tamper --name t1 --disk "vda=$TAM,format=qcow2,mode=external"
ok "t2" create tamper --name t2
T2=$(layer_of "$TAM" t2)
qemu-img rebase -u -f qcow2 -b "" "$T2" || fail "rebase by hand"
sum=$(sha "$T2")
expect 1 "delete over a changed chain" -- delete tamper t2
err_has "changed behind vmsnap's back" "the refusal says what happened"
expect 1 "revert over a changed chain" -- revert tamper t2
assert_eq "$(sha "$T2")" "$sum" "the refused ops changed the layer"
assert_no_journal tamper "the refused delete"
qemu-img rebase -u -f qcow2 -b "$(layer_of "$TAM" t1)" -F qcow2 "$T2" || fail "rebase back"
ok "delete once the chain is back" delete tamper t2
rm -f "$(layer_of "$TAM" t1)"
expect 3 "delete of a snapshot whose layer is gone" -- delete tamper t1
err_has "gone" "the refusal says the layer is gone"
ok "drop the record" delete tamper t1 --metadata-only
note "a chain changed behind vmsnap's back is refused"

# ---- refusals: nothing changed -------------------------------------------------------
BUSY=$T/busy.qcow2
new_image "$BUSY"
hold_image "$BUSY"
sum=$(sha "$BUSY")
expect 4 "external create while qemu-io holds the image" -- \
  create busy --name b1 --disk "vda=$BUSY,format=qcow2,mode=external"
err_has "qemu-io|lock|in use" "the refusal names the holder or the lock"
release_image
assert_eq "$(sha "$BUSY")" "$sum" "the refused create changed the image"
assert_eq "$(layers "$BUSY")" - "the refused create left a layer"

cp "$BUSY" "$T/trunc.qcow2"
write_pat "$T/trunc.qcow2" 0x11 0 4M
truncate -s 300K "$T/trunc.qcow2"
sum=$(sha "$T/trunc.qcow2")
expect 1 "a truncated image" -- create trunc --name x --disk "vda=$T/trunc.qcow2,format=qcow2,mode=external"
err_has "damaged|truncated|corrupt" "the message says why"
assert_eq "$(sha "$T/trunc.qcow2")" "$sum" "the truncated image was changed"
assert_eq "$(layers "$T/trunc.qcow2")" - "a layer for the truncated image"

expect 2 "file= offline" -- create filex --name x --disk "vda=$BUSY,format=qcow2,mode=external,file=$T/f.qcow2"
err_has "file=" "the refusal names file="

truncate -s 64M "$T/blk.img"
loop_attach "$T/blk.img" LOOP
qemu-img create -q -f qcow2 "$LOOP" 32M || fail "qcow2 on $LOOP"
expect 7 "external on a block device" -- create blk --name x --disk "vda=$LOOP,format=qcow2,mode=external"
err_has "block device" "the refusal says why"

mkdir "$T/small"
mount -t tmpfs -o size=8M tmpfs "$T/small" || fail "mount tmpfs"
it_on_cleanup "umount -l $T/small"
new_image "$T/small/full.qcow2"
dd if=/dev/zero of="$T/small/filler" bs=1M count=8 2>/dev/null || true
sum=$(sha "$T/small/full.qcow2")
expect 6 "a full filesystem" -- create full --name x --disk "vda=$T/small/full.qcow2,format=qcow2,mode=external"
assert_eq "$(sha "$T/small/full.qcow2")" "$sum" "the image on the full filesystem"
assert_eq "$(layers "$T/small/full.qcow2")" - "a layer on the full filesystem"
note "busy, truncated, file=, block device, full filesystem: refused, nothing changed"

# ---- cancel and kill during merges ---------------------------------------------------
BIG=$T/big.qcow2
new_image "$BIG" 2G
write_pat "$BIG" 0x11 0 512M
ok "big b1" create big --name b1 --disk "vda=$BIG,format=qcow2,mode=external"
write_pat "$BIG" 0x22 512M 600M
keep_view "$BIG" "$T/ref-big.qcow2"
bg() { # bg ARGS...: snapctl in the background, PID set
  "$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" --progress none "$@" \
    >"$OUT" 2>"$ERR" &
  PID=$!
}
wait_tool() { # wait_tool PATTERN: until a qemu-img matching it runs on this test's files
  for _ in $(seq 3000); do
    pgrep -f "$1 .*$T/" >/dev/null && return 0
    kill -0 "$PID" 2>/dev/null || return 1
    sleep 0.01
  done
  return 1
}
interrupt() { # interrupt SIGNAL TOOL ARGS...: snapctl ARGS, SIGNAL once TOOL runs; RC set
  local sig=$1 tool=$2
  shift 2
  bg "$@"
  wait_tool "$tool" || { show_output; fail "'snapctl $*' never ran $tool"; }
  kill "-$sig" "$PID"
  RC=0
  wait "$PID" || RC=$?
}
# The overlay holds more than b1's layer: delete streams b1 into it.
interrupt INT "qemu-img rebase -p" delete big b1
[ "$RC" = 5 ] || { show_output; fail "delete cancelled while streaming exited $RC, expected 5"; }
assert_eq "$(names big)" b1 "the cancelled delete kept b1"
assert_eq "$(backing_of "$BIG")" "$(layer_of "$BIG" b1)" "the cancelled stream left the chain as it was"
assert_no_journal big "the cancelled delete"
same_view "$BIG" "$T/ref-big.qcow2" "the disk after the cancelled stream"
qcheck "$BIG" "after the cancelled stream"
note "SIGINT while streaming: exit 5, chain unchanged"

# b2's layer (the 600M overlay) gets a small child: delete commits it.
ok "big b2" create big --name b2
write_pat "$BIG" 0x33 0 300M
keep_view "$BIG" "$T/ref-big.qcow2"
interrupt INT "qemu-img commit" delete big b2
[ "$RC" = 0 ] || { show_output; fail "delete with SIGINT during its commit exited $RC, expected 0 (it finishes)"; }
assert_eq "$(names big)" b1 "after delete b2"
same_view "$BIG" "$T/ref-big.qcow2" "the disk after the commit"
qcheck "$BIG" "after the commit"

ok "big b3" create big --name b3
write_pat "$BIG" 0x44 0 300M
keep_view "$BIG" "$T/ref-big.qcow2"
interrupt KILL "qemu-img commit" delete big b3
for _ in $(seq 500); do pgrep -f "qemu-img commit .*$T/" >/dev/null || break; sleep 0.01; done
expect 8 "create before recover, after kill -9 mid-commit" -- create big --name b4
ok "recover after kill -9 mid-commit" recover big
assert_eq "$(names big)" b1 "after recover"
same_view "$BIG" "$T/ref-big.qcow2" "the disk after recover"
qcheck "$BIG" "after recover"
ok "revert to b1 after recover" revert big b1
read_pat "$BIG" 0x11 "b1 after the merges" 0 512M
read_pat "$BIG" 0x00 "b1 after the merges" 512M 600M
note "SIGINT during a commit: it finishes; kill -9 mid-commit + recover"

# ---- crashes inside create -------------------------------------------------------------
CR=$T/crash.qcow2
new_image "$CR"
write_pat "$CR" 0x11
ino=$(stat -c %i "$CR")
for point in create:journaled create:disks-made create:domain-written; do
  RC=0
  VMSNAP_CRASHPOINT=$point "$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" \
    --progress none create crash --name c1 --disk "vda=$CR,format=qcow2,mode=external" \
    >"$OUT" 2>"$ERR" || RC=$?
  [ "$RC" = 137 ] || { show_output; fail "$point: exited $RC, expected 137"; }
  ok "$point: recover" recover crash
  assert_eq "$(stat -c %i "$CR")" "$ino" "$point + recover: the disk is its own image again"
  assert_eq "$(layers "$CR")" - "$point + recover: layers"
  no_domain crash "$point + recover (the domain's first create)"
  read_pat "$CR" 0x11 "$point + recover"
  qcheck "$CR" "$point + recover"
done
# Past its commit record (the snapshot's document): kept.
RC=0
VMSNAP_CRASHPOINT=create:metadata-written "$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" \
  --progress none create crash --name c1 --disk "vda=$CR,format=qcow2,mode=external" \
  >"$OUT" 2>"$ERR" || RC=$?
[ "$RC" = 137 ] || { show_output; fail "create:metadata-written: exited $RC, expected 137"; }
ok "create:metadata-written: recover" recover crash
err_has 'kept' "create:metadata-written: recover says it kept the snapshot"
[ "$(layers "$CR")" != - ] || fail "create:metadata-written + recover: no layer left (the snapshot was not kept)"
assert_eq "$(names crash)" c1 "create:metadata-written + recover: recorded snapshots"
ok "create:metadata-written: delete the kept snapshot" delete crash c1
assert_eq "$(stat -c %i "$CR")" "$ino" "create:metadata-written + delete: the disk is its own image again"
assert_eq "$(layers "$CR")" - "create:metadata-written + delete: layers"
read_pat "$CR" 0x11 "create:metadata-written + delete"
qcheck "$CR" "create:metadata-written + delete"
note "crashes inside create, then recover: rolled back before the document, kept after"

# Revert and delete killed at each journal step: recover leaves the old
# state or the new one, and every snapshot's data intact.
write_pat "$CR" 0x11
ok "c1" create crash --name c1 --disk "vda=$CR,format=qcow2,mode=external"
keep_view "$CR" "$T/ref-c1.qcow2"
write_pat "$CR" 0x22
ok "c2" create crash --name c2
keep_view "$CR" "$T/ref-c2.qcow2"
for point in revert:journaled revert:staged revert:finishing revert:finished; do
  write_pat "$CR" 0x33
  keep_view "$CR" "$T/ref-before.qcow2"
  RC=0
  VMSNAP_CRASHPOINT=$point "$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" \
    --progress none revert crash c1 >"$OUT" 2>"$ERR" || RC=$?
  [ "$RC" = 137 ] || { show_output; fail "$point: exited $RC, expected 137"; }
  ok "$point: recover" recover crash
  out=$(qemu-img compare -f qcow2 -F qcow2 "$CR" "$T/ref-c1.qcow2" 2>&1) ||
    same_view "$CR" "$T/ref-before.qcow2" "$point + recover: neither the old nor the new state"
  assert_eq "$(layers "$CR")" "vmsnap-c1.qcow2 vmsnap-c2.qcow2" "$point + recover: layers"
  qcheck "$CR" "$point + recover"
done
check_all crash "$CR" "after the revert crashes" c2="$T/ref-c2.qcow2" c1="$T/ref-c1.qcow2"
for point in delete:journaled delete:objects-removed; do
  write_pat "$CR" 0x44
  keep_view "$CR" "$T/ref-now.qcow2"
  ok "c3" create crash --name c3
  RC=0
  VMSNAP_CRASHPOINT=$point "$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" \
    --progress none delete crash c2 >"$OUT" 2>"$ERR" || RC=$?
  [ "$RC" = 137 ] || { show_output; fail "$point: exited $RC, expected 137"; }
  ok "$point: recover" recover crash
  assert_eq "$(names crash)" "c1 c3" "$point + recover: the delete finished"
  check_all crash "$CR" "$point + recover" c3="$T/ref-now.qcow2" c1="$T/ref-c1.qcow2"
  ok "back to c3" revert crash c3
  ok "c2 again" create crash --name c2
  ok "c3 out" delete crash c3
done
note "revert and delete killed at each journal step, then recover"
it_done
