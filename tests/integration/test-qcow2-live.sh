#!/bin/bash
# test-qcow2-live.sh — live internal snapshots of qcow2 disks that a
# running QEMU serves (domain qmp:SOCKET), taken by QEMU through ONE QMP
# transaction, deleted through QMP, never written with qemu-img:
#   a real QEMU with two qcow2 disks (-blockdev, addressed by node-name);
#   create --disk-only: both images hold the vmsnap tag, the id and date
#   are recorded, the guest keeps running, list shows it;
#   the snapshot holds the data of that instant (later guest writes, made
#   with the monitor's qemu-io on the guest's own block devices, are not in
#   it: checked after QEMU quits);
#   create with memory (no --disk-only): exit 7 (not built yet);
#   revert: exit 7, nothing changed;
#   a tag that is taken in one image: exit 9, nothing made in the other;
#   delete: QEMU removes exactly vmsnap's snapshot from both images, other
#   snapshots survive; a snapshot removed behind vmsnap's back in one image
#   is deleted from the other and the delete succeeds;
#   a second create after a delete works;
#   the monitor held by another client: create and delete exit 4 quickly
#   (no hang), nothing changed;
#   QEMU restarted with other node names: delete finds the image's node;
#   in the end qemu-img check finds both images clean.
# External, live: --mode external puts new overlays on both disks in ONE
#   transaction, the new active paths are reported and remembered; delete
#   (QEMU's block-stream) of the original images' snapshot leaves them in
#   place, of a layer vmsnap made removes it; after QEMU quits the same
#   snapshots are reverted and deleted offline; a create killed after QEMU
#   switched to the overlays is undone by recover with QEMU running (active
#   commit, pivot) and with QEMU gone (offline commit), the guest's writes
#   kept; SIGINT during QEMU's block-stream cancels the job, chain unchanged.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
it_init test-qcow2-live
need_tool qemu-img qemu-io qemu-system-x86_64 python3 timeout
[ -f "$PLUGIN_BUILD_DIR/qcow2.so" ] || fail "no qcow2 plugin at $PLUGIN_BUILD_DIR/qcow2.so"

SOCK=$T/qmp.sock
PIDFILE=$T/qemu.pid
DOM=qmp:$SOCK
KEY=qmp-vmsnap-live-test # the store key of a QEMU started with -name vmsnap-live-test
A=$T/a.qcow2
B=$T/b.qcow2

# ---- helpers ------------------------------------------------------------------
# qmp CMD [ARGS_JSON]: one command on QEMU's monitor (connect, run, leave);
# prints QEMU's "return" as JSON; on a QMP error prints "CLASS: desc" on
# stderr and exits 1.
cat >"$T/qmp.py" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sys.argv[1])
f = s.makefile("rwb")
def reply():
    while True:
        line = f.readline()
        if not line:
            sys.exit("QEMU closed the monitor")
        m = json.loads(line)
        if "event" not in m:
            return m
reply()
f.write(b'{"execute":"qmp_capabilities"}\n')
f.flush()
reply()
msg = {"execute": sys.argv[2]}
if len(sys.argv) > 3:
    msg["arguments"] = json.loads(sys.argv[3])
f.write(json.dumps(msg).encode() + b"\n")
f.flush()
r = reply()
if "error" in r:
    print("%s: %s" % (r["error"]["class"], r["error"]["desc"]), file=sys.stderr)
    sys.exit(1)
print(json.dumps(r["return"]))
EOF
qmp() { timeout 60 python3 "$T/qmp.py" "$SOCK" "$@"; }

# start_qemu NODE_A NODE_B [IMAGE_B]: QEMU with disk vda on $A and vdb on
# IMAGE_B ($B), nodes named NODE_*, KVM if it works (else TCG), no guest
# OS, its monitor on $SOCK.
start_qemu() {
  rm -f "$SOCK" "$PIDFILE"
  qemu-system-x86_64 -nodefaults -display none -machine q35 -accel kvm -accel tcg -m 64 \
    -name vmsnap-live-test -qmp "unix:$SOCK,server=on,wait=off" \
    -blockdev "driver=file,filename=$A,node-name=f$1" -blockdev "driver=qcow2,file=f$1,node-name=$1" \
    -device virtio-blk-pci,drive="$1",id=vda \
    -blockdev "driver=file,filename=${3:-$B},node-name=f$2" -blockdev "driver=qcow2,file=f$2,node-name=$2" \
    -device virtio-blk-pci,drive="$2",id=vdb \
    -daemonize -pidfile "$PIDFILE" >"$T/qemu.out" 2>&1 ||
    { cat "$T/qemu.out" >&2; fail "qemu-system-x86_64 did not start"; }
  QEMU_PID=$(cat "$PIDFILE")
  it_on_cleanup "kill -9 $QEMU_PID"
  for _ in $(seq 100); do
    [ -S "$SOCK" ] && qmp query-status >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "QEMU's monitor $SOCK did not answer"
}

stop_qemu() {
  qmp quit >/dev/null || kill "$QEMU_PID" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$QEMU_PID" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$QEMU_PID" 2>/dev/null || true
  fail "QEMU (pid $QEMU_PID) did not quit"
}

# guest_write DEV PATTERN: the guest's own block device (vda, vdb) writes
# PATTERN over its first MiB, through the monitor's qemu-io (as a guest
# write would: the image stays QEMU's).
guest_write() {
  local out
  out=$(qmp human-monitor-command \
    "{\"command-line\": \"qemu-io -d /machine/peripheral/$1/virtio-backend \\\"write -P $2 0 1M\\\"\"}") ||
    fail "qemu-io write on $1 failed"
  # qemu-io prints its report on QEMU's stdout; the monitor gets errors only.
  [ "$out" = '""' ] || fail "qemu-io write on $1: $out"
  # Out of QEMU's metadata cache into the file, for readers with -U.
  out=$(qmp human-monitor-command \
    "{\"command-line\": \"qemu-io -d /machine/peripheral/$1/virtio-backend flush\"}") ||
    fail "qemu-io flush on $1 failed"
}

# tags IMG: "ID TAG" per snapshot, in table order (read without the lock).
tags() {
  qemu-img info -f qcow2 -U --output=json "$1" | python3 -c '
import json, sys
for s in json.load(sys.stdin).get("snapshots", []):
    print(s["id"], s["name"])'
}
tag_list() { tags "$1" | awk '{print $2}' | tr '\n' ' ' | sed 's/ $//'; }
has_tag() {
  local t
  t=$(tags "$1" | awk '{print $2}')
  grep -qxF -- "$2" <<<"$t"
}

# first_mib IMG [SNAPSHOT]: the byte that fills the first MiB of the image
# (or of its internal snapshot), "mixed" when it is not one byte.
first_mib() {
  local opt=()
  [ -n "${2:-}" ] && opt=(-l "snapshot.name=$2")
  rm -f "$T/read.raw"
  qemu-img convert -U "${opt[@]}" -f qcow2 -O raw "$1" "$T/read.raw" || fail "cannot read $1 ${2:-}"
  python3 -c '
import sys
d = open(sys.argv[1], "rb").read(1 << 20)
print("0x%02x" % d[0] if d == bytes([d[0]]) * len(d) else "mixed")' "$T/read.raw"
}

qcheck() {
  local out
  out=$(qemu-img check -f qcow2 "$1" 2>&1) || fail "$2: qemu-img check -f qcow2 $1 is not clean: $out"
}

running() {
  local s
  s=$(qmp query-status) || fail "$1: query-status failed"
  grep -q '"status": "running"' <<<"$s" || fail "$1: QEMU is not running: $s"
}

# recorded: the names of vmsnap's own snapshots of the domain ("-" for
# none; foreign snapshots, found in the images, are left out).
recorded() {
  sc --json list "$DOM"
  [ "$RC" = 0 ] || { show_output; fail "snapctl --json list $DOM exited $RC"; }
  python3 -c '
import json, sys
n = [d["name"] for d in json.load(open(sys.argv[1])) if not d.get("foreign")]
print(" ".join(n) if n else "-")' "$OUT"
}

state_of() { echo "$(tag_list "$A") | $(tag_list "$B") | $(recorded)"; }

# ---- a running QEMU with two qcow2 disks ---------------------------------------
qemu-img create -q -f qcow2 "$A" 64M
qemu-img create -q -f qcow2 "$B" 64M
for img in "$A" "$B"; do
  qemu-io -f qcow2 -c 'write -P 0x11 0 1M' "$img" >"$T/qemu-io.out" 2>&1 ||
    { cat "$T/qemu-io.out" >&2; fail "qemu-io could not write into $img"; }
done
start_qemu da db
running "the new QEMU"

# ---- create --------------------------------------------------------------------
ok "create live1 --disk-only" create "$DOM" --disk-only --name live1
for img in "$A" "$B"; do
  has_tag "$img" vmsnap-live1 || fail "create live1: no vmsnap-live1 in $img: $(tag_list "$img")"
  qemu-img snapshot -l -U "$img" | grep -q vmsnap-live1 || fail "qemu-img snapshot -l -U $img"
done
running "after create live1"
sc --json info "$DOM" live1
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
d = d[0] if isinstance(d, list) else d
disks = {x["target"]: x for x in d["disks"]}
for t, img, node in (("vda", sys.argv[2], "da"), ("vdb", sys.argv[3], "db")):
    x = disks[t]
    assert x["backend"] == "qcow2", x
    data = x["data"]
    assert data["tag"] == "vmsnap-live1" and data["image"] == img and data["node"] == node, data
    assert data["id"] == "1" and data["date"], data
' "$OUT" "$A" "$B" || { show_output; fail "create live1: recorded backend data"; }
sc list "$DOM"
[ "$RC" = 0 ] || { show_output; fail "list exited $RC"; }
out_has '^live1' "list shows live1"
note "create --disk-only on a running QEMU: both disks in one transaction"

# The guest writes on: the snapshot keeps the data of its instant.
guest_write vda 0x22
guest_write vdb 0x22

# ---- what is not built yet: exit 7, nothing changed ----------------------------
before=$(state_of)
expect 7 "create with memory" -- create "$DOM" --name mem1
assert_eq "$(state_of)" "$before" "after the refused create with memory"
expect 7 "revert a running domain" -- revert "$DOM" live1
err_has "memory" "the refusal says the memory snapshot is needed"
assert_eq "$(state_of)" "$before" "after the refused revert"
assert_eq "$(first_mib "$A")" 0x22 "vda after the refused revert"
running "after the refused revert"
note "create with memory and revert of a running domain: exit 7, nothing changed"

# ---- a tag that is taken -------------------------------------------------------
qmp blockdev-snapshot-internal-sync '{"device": "db", "name": "vmsnap-taken"}' >/dev/null ||
  fail "QMP blockdev-snapshot-internal-sync of vmsnap-taken failed"
before=$(state_of)
expect 9 "create over a tag taken in one image" -- create "$DOM" --disk-only --name taken
err_has "already holds a snapshot tagged vmsnap-taken" "the refusal names the tag"
assert_eq "$(state_of)" "$before" "after the refused create"
note "a taken tag: exit 9, nothing made in either image"

# ---- delete; create again -------------------------------------------------------
ok "delete live1" delete "$DOM" live1
for img in "$A" "$B"; do
  ! has_tag "$img" vmsnap-live1 || fail "delete live1: vmsnap-live1 still in $img: $(tag_list "$img")"
done
assert_eq "$(tag_list "$B")" vmsnap-taken "the foreign snapshot survived the delete"
assert_eq "$(recorded)" - "recorded snapshots after delete live1"
assert_no_journal "$KEY" "delete live1"
running "after delete live1"
ok "create live2 after the delete" create "$DOM" --disk-only --name live2
for img in "$A" "$B"; do
  has_tag "$img" vmsnap-live2 || fail "create live2: no vmsnap-live2 in $img: $(tag_list "$img")"
done
guest_write vda 0x33
guest_write vdb 0x33
ok "create live3" create "$DOM" --disk-only --name live3
# live3 removed from vdb's image behind vmsnap's back: the delete removes
# it from vda's and succeeds.
id3=$(tags "$B" | awk '$2 == "vmsnap-live3" {print $1}')
qmp blockdev-snapshot-delete-internal-sync "{\"device\": \"db\", \"id\": \"$id3\", \"name\": \"vmsnap-live3\"}" >/dev/null ||
  fail "deleting vmsnap-live3 from db by hand failed"
ok "delete live3 (already gone from vdb)" delete "$DOM" live3
! has_tag "$A" vmsnap-live3 || fail "delete live3 left vmsnap-live3 in $A"
assert_eq "$(tag_list "$A")" vmsnap-live2 "snapshots of vda after delete live3"
assert_eq "$(tag_list "$B")" "vmsnap-taken vmsnap-live2" "snapshots of vdb after delete live3"
note "delete through QEMU, idempotent; create after a delete"

# ---- the monitor held by another client -----------------------------------------
before=$(state_of)
python3 - "$SOCK" <<'EOF' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.recv(4096)  # the greeting: QEMU now serves this client only
time.sleep(600)
EOF
HOLDER=$!
it_on_cleanup "kill $HOLDER"
sleep 0.5
kill -0 "$HOLDER" || fail "the idle monitor client did not connect"
for args in "create $DOM --disk-only --name held" "delete $DOM live2" "list $DOM"; do
  start=$(date +%s)
  RC=0
  # shellcheck disable=SC2086 # the words of args are meant
  timeout 60 "$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" --progress none $args \
    >"$OUT" 2>"$ERR" || RC=$?
  took=$(($(date +%s) - start))
  [ "$RC" = 4 ] || { show_output; fail "'snapctl $args' with the monitor held exited $RC, expected 4"; }
  [ "$took" -le 20 ] || fail "'snapctl $args' with the monitor held took ${took}s"
done
kill "$HOLDER"
wait "$HOLDER" 2>/dev/null || true
assert_eq "$(state_of)" "$before" "after the busy refusals"
assert_eq "$(recorded)" live2 "recorded snapshots after the busy refusals"
assert_no_journal "$KEY" "the busy refusals"
note "a held monitor: exit 4 quickly, nothing changed"

# ---- QEMU restarted with other node names ----------------------------------------
ok "create live4" create "$DOM" --disk-only --name live4
stop_qemu
start_qemu dx dy
ok "delete live4 (its nodes are renamed)" delete "$DOM" live4
for img in "$A" "$B"; do
  ! has_tag "$img" vmsnap-live4 || fail "delete live4: vmsnap-live4 still in $img: $(tag_list "$img")"
done
assert_eq "$(recorded)" live2 "recorded snapshots after delete live4"
note "delete after QEMU restarted with other node names"

# ---- an image QEMU no longer serves ---------------------------------------------
stop_qemu
C=$T/c.qcow2
qemu-img create -q -f qcow2 "$C" 64M
start_qemu da db "$C"
before=$(state_of)
expect 3 "delete while QEMU serves another image as vdb" -- delete "$DOM" live2
err_has "block node db serves another image.*none of its nodes serves $B" "the refusal names the node and the image"
assert_eq "$(state_of)" "$before" "after the refused delete"
assert_no_journal "$KEY" "the refused delete"
note "the recorded node serves another image, none serves ours: exit 3, nothing changed"

# ---- QEMU stops: the images are intact, and can be worked on offline -----------
stop_qemu
for img in "$A" "$B"; do
  qcheck "$img" "after QEMU quit"
  assert_eq "$(first_mib "$img")" 0x33 "the active layer of $img"
  assert_eq "$(first_mib "$img" vmsnap-live2)" 0x22 "snapshot vmsnap-live2 of $img"
done
assert_eq "$(first_mib "$B" vmsnap-taken)" 0x22 "the foreign snapshot of $B"
note "qemu-img check: both images clean; snapshots hold the data of their instant"

# With QEMU shut down, the live snapshots are the domain's ($KEY) offline.
ok "revert live2 offline" revert "$KEY" live2
ok "delete live2 offline" delete "$KEY" live2
for img in "$A" "$B"; do
  assert_eq "$(first_mib "$img")" 0x22 "$img after the offline revert to live2"
  qcheck "$img" "after the offline revert and delete"
done
assert_eq "$(tag_list "$A") | $(tag_list "$B")" " | vmsnap-taken" "snapshots left in the end"
note "with QEMU shut down: revert and delete offline"

# ---- external snapshots while QEMU runs -----------------------------------------
# New images for both disks; QEMU's view of its chains: "FILE<BACKING" per
# qcow2 node, sorted.
qchain() {
  qmp query-named-block-nodes '{"flat": true}' | python3 -c '
import json, sys
print(" ".join(sorted("%s<%s" % (n["file"].split("/")[-1], (n.get("backing_file") or "-").split("/")[-1])
                      for n in json.load(sys.stdin) if n["drv"] == "qcow2")))'
}
active_of() { # active_of DEV: the image QEMU writes for it
  qmp query-block | python3 -c '
import json, sys
for d in json.load(sys.stdin):
    if d.get("qdev", "").startswith("/machine/peripheral/%s/" % sys.argv[1]):
        print(d["inserted"]["file"])' "$1"
}
A=$T/ea.qcow2
B=$T/eb.qcow2
for img in "$A" "$B"; do
  qemu-img create -q -f qcow2 "$img" 64M
  qemu-io -f qcow2 -c 'write -P 0x11 0 1M' "$img" >/dev/null 2>&1 || fail "qemu-io on $img"
done
start_qemu ea eb
LA=$(dirname "$A")/.vmsnap/$(basename "$A")
LB=$(dirname "$B")/.vmsnap/$(basename "$B")
ok "live external e1" create "$DOM" --name e1 --disk-only --mode external
running "after the live external snapshot"
assert_eq "$(active_of vda) $(active_of vdb)" "$LA/vmsnap-e1.qcow2 $LB/vmsnap-e1.qcow2" \
  "QEMU writes to the new overlays"
err_has "disk vda is now $LA/vmsnap-e1.qcow2" "the new active path is reported"
assert_eq "$(qchain)" "ea.qcow2<- eb.qcow2<- vmsnap-e1.qcow2<ea.qcow2 vmsnap-e1.qcow2<eb.qcow2" \
  "QEMU's chains after e1"
sc --json info "$DOM" e1
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
d = d[0] if isinstance(d, list) else d
for disk in d["disks"]:
    data = disk["data"]
    assert data["mode"] == "external" and data["layer"] == disk["source"], data
    assert data["overlay"].endswith("/vmsnap-e1.qcow2"), data
' "$OUT" || { show_output; fail "e1: recorded backend data"; }
guest_write vda 0x22
guest_write vdb 0x22
ok "live external e2" create "$DOM" --name e2 --disk-only --mode external
guest_write vda 0x33
guest_write vdb 0x33
ok "delete e1 while running (the original images: streamed, left in place)" delete "$DOM" e1
assert_eq "$(qchain)" "ea.qcow2<- eb.qcow2<- vmsnap-e1.qcow2<- vmsnap-e1.qcow2<- vmsnap-e2.qcow2<vmsnap-e1.qcow2 vmsnap-e2.qcow2<vmsnap-e1.qcow2" \
  "QEMU's chains after delete e1"
[ -f "$A" ] && [ -f "$B" ] || fail "delete e1 removed an image vmsnap did not make"
ok "delete e2 while running (a layer vmsnap made: streamed, removed)" delete "$DOM" e2
[ ! -e "$LA/vmsnap-e1.qcow2" ] && [ ! -e "$LB/vmsnap-e1.qcow2" ] || fail "delete e2 left its layers"
assert_eq "$(qchain)" "ea.qcow2<- eb.qcow2<- vmsnap-e2.qcow2<- vmsnap-e2.qcow2<-" \
  "QEMU's chains after delete e2"
running "after the live deletes"
ok "live external e3" create "$DOM" --name e3 --disk-only --mode external
guest_write vda 0x44
stop_qemu
for img in "$LA/vmsnap-e2.qcow2" "$LB/vmsnap-e2.qcow2"; do
  qcheck "$img" "the layer of e3 after QEMU quit"
  assert_eq "$(first_mib "$img")" 0x33 "the layer of e3 ($img)"
done
assert_eq "$(first_mib "$LA/vmsnap-e3.qcow2")" 0x44 "vda's active image after QEMU quit"
ok "revert e3 offline" revert "$KEY" e3
assert_eq "$(first_mib "$LA/vmsnap-e3.qcow2")" 0x33 "vda after the offline revert to e3"
ok "delete e3 offline" delete "$KEY" e3
for img in "$LA/vmsnap-e3.qcow2" "$LB/vmsnap-e3.qcow2"; do
  qcheck "$img" "after delete e3"
  assert_eq "$(first_mib "$img")" 0x33 "$img after delete e3"
  assert_eq "$(qemu-img info -f qcow2 --output=json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("backing-filename", "-"))')" - "$img stands alone"
done
note "live external: ONE transaction, new active paths reported, delete by block-stream, offline after QEMU quits"

# ---- a live external create interrupted, then recover ---------------------------
# Killed after QEMU switched to the new overlays (domain.json written, the
# snapshot's document, the create's commit record, not): recover with QEMU
# running commits the overlays back (QEMU pivots to the old images); with
# QEMU gone, recover commits what QEMU wrote into them offline and removes
# them. Killed once the document is in place, the snapshot is kept.
A=$T/ra.qcow2
B=$T/rb.qcow2
for img in "$A" "$B"; do qemu-img create -q -f qcow2 "$img" 64M; done
start_qemu ra rb
RC=0
VMSNAP_CRASHPOINT=create:domain-written "$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" \
  --progress none create "$DOM" --name r1 --disk-only --mode external >"$OUT" 2>"$ERR" || RC=$?
[ "$RC" = 137 ] || { show_output; fail "the crashed live external create exited $RC, expected 137"; }
assert_eq "$(active_of vda)" "$(dirname "$A")/.vmsnap/ra.qcow2/vmsnap-r1.qcow2" "QEMU writes to the overlay before recover"
guest_write vda 0x5e
ok "recover with QEMU running" recover "$KEY"
assert_eq "$(active_of vda) $(active_of vdb)" "$A $B" "QEMU writes to the old images again"
[ ! -e "$(dirname "$A")/.vmsnap/ra.qcow2/vmsnap-r1.qcow2" ] || fail "recover left the overlay"
assert_eq "$(recorded)" - "recorded snapshots after the rolled-back live create"
guest_write vda 0x5f
RC=0
VMSNAP_CRASHPOINT=create:domain-written "$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" \
  --progress none create "$DOM" --name r2 --disk-only --mode external >"$OUT" 2>"$ERR" || RC=$?
[ "$RC" = 137 ] || { show_output; fail "the second crashed live external create exited $RC, expected 137"; }
guest_write vda 0x60
stop_qemu
ok "recover with QEMU gone" recover "$KEY"
[ ! -e "$(dirname "$A")/.vmsnap/ra.qcow2/vmsnap-r2.qcow2" ] || fail "recover left the overlay of r2"
assert_eq "$(first_mib "$A")" 0x60 "the guest's last write is in vda's image after the offline recover"
for img in "$A" "$B"; do qcheck "$img" "after the offline recover"; done
note "a live external create killed after QEMU switched: recover undoes it, live and offline, keeping the guest's writes"
start_qemu ra rb
RC=0
VMSNAP_CRASHPOINT=create:metadata-written "$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" \
  --progress none create "$DOM" --name r3 --disk-only --mode external >"$OUT" 2>"$ERR" || RC=$?
[ "$RC" = 137 ] || { show_output; fail "the live external create killed after its document exited $RC, expected 137"; }
ok "recover with QEMU running (create:metadata-written)" recover "$KEY"
err_has 'kept' "create:metadata-written: recover says it kept the snapshot"
assert_eq "$(recorded)" r3 "recorded snapshots after recover of the committed live create"
assert_eq "$(active_of vda)" "$(dirname "$A")/.vmsnap/ra.qcow2/vmsnap-r3.qcow2" "QEMU still writes to r3's overlay"
guest_write vda 0x61
ok "delete the kept r3 (live: streamed into the overlay QEMU writes)" delete "$DOM" r3
assert_eq "$(recorded)" - "recorded snapshots after deleting r3"
stop_qemu
R3=$(dirname "$A")/.vmsnap/ra.qcow2/vmsnap-r3.qcow2
assert_eq "$(first_mib "$R3")" 0x61 "the guest's write after the kept create, in the image QEMU served"
qcheck "$R3" "after deleting the kept live snapshot"
note "a live external create killed after its document: recover keeps it, and it deletes as any other"

# ---- cancel of a live merge --------------------------------------------------------
# A QEMU whose disk is an overlay holding 768 MiB on a base: after a live
# external snapshot, deleting it makes QEMU stream that overlay into the new
# one; SIGINT while it runs cancels the job (job-cancel) and leaves the chain.
CB=$T/cbase.qcow2
CO=$T/cov.qcow2
qemu-img create -q -f qcow2 "$CB" 2G
qemu-io -f qcow2 -c 'write -P 0x11 0 256M' "$CB" >/dev/null 2>&1 || fail "qemu-io on $CB"
qemu-img create -q -f qcow2 -b "$CB" -F qcow2 "$CO" 2G
qemu-io -f qcow2 -c 'write -P 0x22 256M 768M' "$CO" >/dev/null 2>&1 || fail "qemu-io on $CO"
A=$CO
B=$T/cb2.qcow2
qemu-img create -q -f qcow2 "$B" 64M
start_qemu ca cb
ok "live external c1" create "$DOM" --name c1 --disk-only --mode external
LC=$(dirname "$CO")/.vmsnap/$(basename "$CO")
before=$(qchain)
"$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" --progress json delete "$DOM" c1 \
  >"$OUT" 2>"$ERR" &
PID=$!
it_on_cleanup "kill -9 $PID"
for _ in $(seq 3000); do
  grep -q '"done"' "$ERR" && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.01
done
kill -INT "$PID"
RC=0
wait "$PID" || RC=$?
[ "$RC" = 5 ] || { show_output; fail "delete cancelled during QEMU's stream exited $RC, expected 5"; }
err_has "cancelled" "the message says the job was cancelled"
# vda's chain is as it was (vdb's small stream may have finished: it only
# copied data into the child, so vdb's snapshot is whole either way).
for link in "cov.qcow2<cbase.qcow2" "vmsnap-c1.qcow2<cov.qcow2"; do
  grep -qF "$link" <<<"$(qchain)" || fail "after the cancelled stream: $link is gone from $(qchain) (was $before)"
done
assert_eq "$(qmp query-jobs)" "[]" "no job left in QEMU"
assert_eq "$(recorded)" c1 "recorded snapshots after the cancelled delete"
assert_no_journal "$KEY" "the cancelled delete"
# A job an interrupted vmsnap left running in QEMU: the delete waits for it
# (exit 4, named); once it concluded, the delete dismisses it and goes on.
top=$(qmp query-block | python3 -c '
import json, sys
for d in json.load(sys.stdin):
    if d.get("qdev", "").startswith("/machine/peripheral/vda/"): print(d["inserted"]["node-name"])')
qmp block-stream "{\"job-id\": \"vmsnap-left\", \"device\": \"$top\", \"speed\": 1, \"auto-dismiss\": false}" >/dev/null ||
  fail "cannot start a throttled block-stream"
expect 4 "delete while a vmsnap job of an earlier run still runs" -- delete "$DOM" c1
err_has "vmsnap-left" "the refusal names the job"
qmp job-cancel '{"id": "vmsnap-left"}' >/dev/null || fail "job-cancel vmsnap-left"
for _ in $(seq 100); do grep -q concluded <<<"$(qmp query-jobs)" && break; sleep 0.1; done
ok "delete c1 for real" delete "$DOM" c1
assert_eq "$(qmp query-jobs)" "[]" "the leftover job was dismissed"
assert_eq "$(active_of vda)" "$LC/vmsnap-c1.qcow2" "vda after delete c1"
stop_qemu
assert_eq "$(first_mib "$LC/vmsnap-c1.qcow2")" 0x11 "the first MiB after the live merge"
qcheck "$LC/vmsnap-c1.qcow2" "after the live merge"
note "SIGINT during QEMU's block-stream: exit 5, job cancelled, chain unchanged; then merged"

it_done
