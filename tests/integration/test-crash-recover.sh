#!/bin/bash
# test-crash-recover.sh — kill -9 at every crash point, then recover.
#
# For each point of VMSNAP_CRASHPOINT (the library SIGKILLs itself there):
# run the operation (it must die: exit 137), check that a command that
# changes the domain is refused with exit 8 and a message naming recover,
# run `snapctl recover DOMAIN`, and check the state is exactly the old one
# (create before its document is in place; revert before revert:finishing)
# or the new one (create:metadata-written; delete; revert from
# revert:finishing): disk checksums, snapshot files, list and current
# snapshot, no pending journal, no .part or .vmsnap-revert file.
# Also a block device's revert (rewritten in place) at revert:staged and
# revert:finishing. Then a real kill -9 of snapctl in the middle of a long create copy and of
# a long revert staging copy, each followed by recover.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
it_init test-crash-recover

# crash POINT ARGS...: snapctl ARGS with the crash point set; must die by SIGKILL.
crash() {
  local point=$1
  shift
  RC=0
  VMSNAP_CRASHPOINT=$point "$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" \
    --progress none "$@" >"$OUT" 2>"$ERR" || RC=$?
  [ "$RC" = 137 ] || { show_output; fail "$point: 'snapctl $*' exited $RC, expected 137 (killed at the crash point)"; }
}

# refused DOMAIN WHAT: a command that writes the domain needs recover first.
refused() {
  has_journal "$1" || fail "$2: no journal after the crash"
  expect 8 "$2: create after the crash" -- create "$1" --name probe
  err_has 'recover' "$2: the refusal names recover"
  expect 8 "$2: delete after the crash" -- delete "$1" s0
  err_has "snapctl recover $1|recover" "$2: the refusal names recover"
  [ ! -e "$(dd_file "$3" probe)" ] || fail "$2: a refused create made a snapshot file"
}

# state_is DOMAIN DISK WHAT NAMES CURRENT DISK_SHA [SNAP=SHA|SNAP=absent]...
state_is() {
  local dom=$1 disk=$2 what=$3 want_names=$4 want_cur=$5 want_sha=$6 s
  shift 6
  assert_no_journal "$dom" "$what"
  assert_no_leftovers "$T"
  assert_eq "$(names "$dom")" "$want_names" "$what: snapshots"
  assert_eq "$(current "$dom")" "$want_cur" "$what: current snapshot"
  assert_eq "$(sha "$disk")" "$want_sha" "$what: disk checksum"
  local njson
  njson=$(find "$ST/domains/$dom/snapshots" -name '*.json' | wc -l)
  [ "$want_names" = - ] && want_n=0 || want_n=$(wc -w <<<"$want_names")
  assert_eq "$njson" "$want_n" "$what: snapshot documents in the state dir"
  for s in "$@"; do
    local name=${s%%=*} val=${s#*=} f
    f=$(dd_file "$disk" "$name")
    if [ "$val" = absent ]; then
      [ ! -e "$f" ] || fail "$what: $f should not exist"
    else
      [ -f "$f" ] || fail "$what: snapshot file $f is missing"
      assert_eq "$(sha "$f")" "$val" "$what: checksum of $f"
    fi
  done
  # Objects vmsnap made but no longer records would show as foreign.
  sc list "$dom"
  ! grep -q foreign "$OUT" || { show_output; fail "$what: list shows foreign objects"; }
}

# json_same A B WHAT: two JSON documents are equal (B missing counts as {}
# when A is a fresh domain's document: no disks, no current).
json_same() {
  python3 - "$1" "$2" <<'EOF' || fail "$3: $2 differs from before the operation: $(cat "$2" 2>/dev/null || echo missing)"
import json, os, sys
def load(p):
    if not os.path.exists(p):
        return {"disks": [], "current": None}
    return json.load(open(p))
a, b = load(sys.argv[1]), load(sys.argv[2])
for d in (a, b):
    d.setdefault("disks", []); d.setdefault("current", None)
    d.pop("name", None); d.pop("format", None); d.pop("driver", None)
sys.exit(0 if a == b else 1)
EOF
}

# ---- create -----------------------------------------------------------------------
# Up to create:domain-written (domain.json and .current in place, the
# snapshot's document not) recover rolls the create back; at
# create:metadata-written the document, the create's commit record, is in
# place and recover keeps the snapshot.
n=0
for point in create:journaled create:disks-made create:domain-written; do
  n=$((n + 1))
  dom=c$n disk=$T/c$n.img
  make_sparse "$disk" 32 50 "c$n"
  sha0=$(sha "$disk")
  ok "$point: setup" create "$dom" --disk "vda=$disk" --name s0
  cp "$ST/domains/$dom/domain.json" "$T/domain.json.before"
  crash "$point" create "$dom" --name s1
  refused "$dom" "$point" "$disk"
  if [ $n = 3 ]; then ok "$point: recover (all domains)" recover; else ok "$point: recover" recover "$dom"; fi
  err_has 'roll' "$point: recover says it rolled the create back"
  state_is "$dom" "$disk" "$point + recover" s0 s0 "$sha0" "s0=$sha0" s1=absent
  soft json_same "$T/domain.json.before" "$ST/domains/$dom/domain.json" "$point + recover: domain.json"
  ok "$point: recover again is a no-op" recover "$dom"
  ok "$point: the name is free again" create "$dom" --name s1
  state_is "$dom" "$disk" "$point + recover + create" "s0 s1" s1 "$sha0" "s0=$sha0" "s1=$sha0"
  note "$point: recover rolled the create back"
done
n=$((n + 1))
dom=c$n disk=$T/c$n.img
make_sparse "$disk" 32 50 "c$n"
sha0=$(sha "$disk")
ok "create:metadata-written: setup" create "$dom" --disk "vda=$disk" --name s0
crash create:metadata-written create "$dom" --name s1
refused "$dom" create:metadata-written "$disk"
ok "create:metadata-written: recover" recover "$dom"
err_has 'kept' "create:metadata-written: recover says it kept the snapshot"
state_is "$dom" "$disk" "create:metadata-written + recover" "s0 s1" s1 "$sha0" "s0=$sha0" "s1=$sha0"
ok "create:metadata-written: recover again is a no-op" recover "$dom"
ok "create:metadata-written: revert to the kept snapshot" revert "$dom" s1
ok "create:metadata-written: delete it" delete "$dom" s1
state_is "$dom" "$disk" "create:metadata-written + recover + delete" s0 s0 "$sha0" "s0=$sha0" s1=absent
note "create:metadata-written: recover kept the snapshot (its document is the commit record)"

# A domain's FIRST create killed at each step before its document: recover
# rolls it back and leaves no domain at all (as a refused first create
# does), not an empty one; the disk is untouched and a create afterwards
# starts afresh. Killed after it, the domain and its snapshot stay.
for point in create:journaled create:disks-made create:domain-written; do
  n=$((n + 1))
  dom=f$n disk=$T/f$n.img
  make_sparse "$disk" 16 50 "f$n"
  sha0=$(sha "$disk")
  crash "$point" create "$dom" --disk "vda=$disk" --name s0
  has_journal "$dom" || fail "$point (first create): no journal after the crash"
  ok "$point (first create): recover" recover "$dom"
  err_has 'roll' "$point (first create): recover says it rolled the create back"
  no_domain "$dom" "$point (first create) + recover"
  assert_eq "$(sha "$disk")" "$sha0" "$point (first create) + recover: disk checksum"
  [ ! -e "$(dd_file "$disk" s0)" ] || fail "$point (first create) + recover: the snapshot file is left"
  ok "$point (first create): create again" create "$dom" --disk "vda=$disk" --name s0
  state_is "$dom" "$disk" "$point (first create) + recover + create" s0 s0 "$sha0" "s0=$sha0"
  note "$point: recover of a first create left no domain"
done
n=$((n + 1))
dom=f$n disk=$T/f$n.img
make_sparse "$disk" 16 50 "f$n"
sha0=$(sha "$disk")
crash create:metadata-written create "$dom" --disk "vda=$disk" --name s0
ok "create:metadata-written (first create): recover" recover "$dom"
err_has 'kept' "create:metadata-written (first create): recover says it kept the snapshot"
state_is "$dom" "$disk" "create:metadata-written (first create) + recover" s0 s0 "$sha0" "s0=$sha0"
ok "create:metadata-written (first create): a create without --disk uses the remembered disks" \
  create "$dom" --name s1
state_is "$dom" "$disk" "create:metadata-written (first create) + create" "s0 s1" s1 "$sha0" "s0=$sha0" "s1=$sha0"
note "create:metadata-written: recover kept a first create, its domain and disk set"

# A crash between the journal's clear and the removal of the empty domain
# leaves the bare directory: recover (of every domain) removes it too.
mkdir -p "$ST/domains/bare/snapshots"
: >"$ST/domains/bare/lock"
ok "recover (all domains) with a bare domain dir" recover
no_domain bare "recover of a bare domain dir"

# A create that also changes the disk set, rolled back: the old disk set
# must be back, or the old snapshot no longer matches the domain's disks.
for point in create:disks-made create:domain-written; do
  n=$((n + 1))
  dom=cx$n disk=$T/cx$n.img disk2=$T/cx$n-b.img
  make_sparse "$disk" 16 50 "cx$n"
  make_sparse "$disk2" 16 50 "cx$n-b"
  sha0=$(sha "$disk")
  ok "$point (new disk set): setup" create "$dom" --disk "vda=$disk" --name s0
  cp "$ST/domains/$dom/domain.json" "$T/domain.json.before"
  crash "$point" create "$dom" --disk "vda=$disk" --disk "vdb=$disk2" --name s1
  ok "$point (new disk set): recover" recover "$dom"
  assert_no_leftovers "$T"
  [ ! -e "$(dd_file "$disk2" s1)" ] || fail "$point (new disk set): recover left $(dd_file "$disk2" s1)"
  soft json_same "$T/domain.json.before" "$ST/domains/$dom/domain.json" \
    "$point (new disk set) + recover: domain.json (the rolled-back create's disk set is still remembered)"
  soft ok "$point (new disk set): revert to s0 after the rolled-back create" revert "$dom" s0
  note "$point with a new disk set: recover restored the old disk set"
done
# The first create of a domain, rolled back: no disks may be remembered.
n=$((n + 1))
dom=cf$n disk=$T/cf$n.img
make_sparse "$disk" 16 50 "cf$n"
crash create:domain-written create "$dom" --disk "vda=$disk" --name s1
ok "first create + create:domain-written: recover" recover "$dom"
no_domain "$dom" "first create + recover"
first_create_forgotten() {
  expect 2 "first create + create:domain-written + recover: a create without --disk (no disks were ever recorded)" -- create "$dom" --name s2
  err_has 'no disks' "first create + recover: create without --disk"
  no_domain "$dom" "first create + recover + a refused create"
}
soft first_create_forgotten
note "first create rolled back at create:domain-written: no disk set remembered"

# ---- revert --------------------------------------------------------------------------
for point in revert:journaled revert:staged revert:finishing revert:finished; do
  n=$((n + 1))
  dom=r$n disk=$T/r$n.img
  make_sparse "$disk" 32 50 "r$n"
  sha0=$(sha "$disk")
  ok "$point: setup s0" create "$dom" --disk "vda=$disk" --name s0
  scribble "$disk" 1 2 "r$n-a"
  sha1=$(sha "$disk")
  ok "$point: setup s1" create "$dom" --name s1
  scribble "$disk" 20 2 "r$n-b"
  sha2=$(sha "$disk")
  cp "$ST/domains/$dom/domain.json" "$T/domain.json.before"
  crash "$point" revert "$dom" s0
  refused "$dom" "$point" "$disk"
  ok "$point: recover" recover "$dom"
  case $point in
  revert:journaled | revert:staged)
    err_has 'roll' "$point: recover says it rolled the revert back"
    state_is "$dom" "$disk" "$point + recover (rolled back)" "s0 s1" s1 "$sha2" "s0=$sha0" "s1=$sha1"
    json_same "$T/domain.json.before" "$ST/domains/$dom/domain.json" "$point + recover: domain.json"
    note "$point: recover rolled the revert back"
    ;;
  *)
    err_has 'finish' "$point: recover says it finished the revert"
    state_is "$dom" "$disk" "$point + recover (finished)" "s0 s1" s0 "$sha0" "s0=$sha0" "s1=$sha1"
    note "$point: recover finished the revert"
    ;;
  esac
  ok "$point: revert to s1 after recover" revert "$dom" s1
  assert_eq "$(sha "$disk")" "$sha1" "$point: revert after recover"
done

# ---- delete --------------------------------------------------------------------------
for point in delete:journaled delete:objects-removed; do
  n=$((n + 1))
  dom=d$n disk=$T/d$n.img
  make_sparse "$disk" 32 50 "d$n"
  sha0=$(sha "$disk")
  ok "$point: setup s0" create "$dom" --disk "vda=$disk" --name s0
  scribble "$disk" 1 2 "d$n-a"
  sha1=$(sha "$disk")
  ok "$point: setup s1" create "$dom" --name s1
  crash "$point" delete "$dom" s1
  has_journal "$dom" || fail "$point: no journal after the crash"
  expect 8 "$point: create after the crash" -- create "$dom" --name probe
  err_has 'recover' "$point: the refusal names recover"
  expect 8 "$point: revert after the crash" -- revert "$dom" s0
  assert_eq "$(sha "$disk")" "$sha1" "$point: a refused revert changed the disk"
  ok "$point: recover" recover "$dom"
  err_has 'finish' "$point: recover says it finished the delete"
  state_is "$dom" "$disk" "$point + recover (finished)" s0 s0 "$sha1" "s0=$sha0" s1=absent
  note "$point: recover finished the delete"
done

# ---- revert of a block device (written in place in its finish phase) ---------------
need_tool losetup
for point in revert:staged revert:finishing; do
  n=$((n + 1))
  dom=b$n
  truncate -s 16M "$T/b$n.img"
  dev=
  loop_attach "$T/b$n.img" dev
  scribble "$dev" 2 4 "b$n-a"
  shab0=$(sha "$dev")
  ok "$point (block device): setup" create "$dom" --disk "vda=$dev,file=$T/b$n-snap.raw" --name s0
  scribble "$dev" 0 16 "b$n-b"
  shab1=$(sha "$dev")
  crash "$point" revert "$dom" s0
  expect 8 "$point (block device): create after the crash" -- create "$dom" --name probe
  ok "$point (block device): recover" recover "$dom"
  assert_no_journal "$dom" "$point (block device) + recover"
  assert_eq "$(sha "$T/b$n-snap.raw")" "$shab0" "$point (block device) + recover: the snapshot file"
  if [ "$point" = revert:staged ]; then
    assert_eq "$(sha "$dev")" "$shab1" "$point (block device) + recover (rolled back): the device"
    assert_eq "$(current "$dom")" s0 "$point (block device) + recover: current snapshot"
  else
    assert_eq "$(sha "$dev")" "$shab0" "$point (block device) + recover (finished): the device"
  fi
  note "$point on a block device: recover"
done

# freeze_then_kill PID WHAT: let the small disk finish, stop snapctl with
# SIGSTOP so the journal can be read at the exact point it is killed
# (PHASE_AT_KILL: the journal's phase, "-" without a journal), then SIGKILL.
freeze_then_kill() {
  sleep 0.1
  kill -STOP "$1" 2>/dev/null || { show_output; fail "$2: snapctl ended before it could be killed"; }
  PHASE_AT_KILL=$(journal_text long | python3 -c 'import json,sys
t = sys.stdin.read()
print(json.loads(t).get("phase", "-") if t else "-")')
  kill -9 "$1"
  RC=0
  wait "$1" || RC=$?
  assert_eq "$RC" 137 "$2: exit status of snapctl killed by SIGKILL"
}

# ---- a real kill -9 during a long copy -----------------------------------------------
# Two disks: the small one is done (snapshot or staging copy made) while the
# big one is still copying when snapctl is killed; recover must undo both.
disk=$T/long.img
make_dense "$disk" 512
shal0=$(sha "$disk")
sddir=$(dd_dir "$disk")
mkdir "$T/sm"
small=$T/sm/small.img
make_sparse "$small" 16 50 small
shas0=$(sha "$small")
two=(--disk "vda=$disk" --disk "vdb=$small")

"$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" --progress none \
  create long "${two[@]}" --name s1 >"$OUT" 2>"$ERR" &
pid=$!
it_on_cleanup "kill -9 $pid"
wait_for_copy 60 "$pid" "$sddir" "$sddir/.vmsnap-s1.raw.part-*" ||
  { show_output; fail "kill -9 create: vda's copy never started"; }
freeze_then_kill "$pid" "kill -9 create"
if [ ! -e "$(dd_file "$disk" s1)" ]; then
  echo "vda's copy was still running when snapctl was killed"
else
  echo "vda's copy had ended when snapctl was killed (fast disk); recover must still undo the create"
fi
[ -f "$(dd_file "$small" s1)" ] && echo "vdb's snapshot was complete when snapctl was killed"
has_journal long || fail "kill -9 create: no journal during the copy"
expect 8 "kill -9 create: create after the kill" -- create long --name probe
err_has recover "kill -9 create: the refusal names recover"
ok "kill -9 create: recover" recover long
assert_no_journal long "kill -9 create + recover"
assert_no_leftovers "$T"
[ ! -e "$(dd_file "$disk" s1)" ] || fail "kill -9 create + recover: snapshot file of vda left"
[ ! -e "$(dd_file "$small" s1)" ] || fail "kill -9 create + recover: snapshot file of vdb left"
no_domain long "kill -9 create (the domain's first) + recover"
assert_eq "$(sha "$disk")" "$shal0" "kill -9 create + recover: vda"
assert_eq "$(sha "$small")" "$shas0" "kill -9 create + recover: vdb"
note "kill -9 during a two-disk create copy, then recover: nothing left"

ok "create to revert to" create long "${two[@]}" --name s1
scribble "$disk" 100 16 long-a
scribble "$small" 0 4 small-a
shal1=$(sha "$disk")
shas1=$(sha "$small")
ino=$(stat -c %i "$disk")
"$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" --progress none \
  revert long s1 >"$OUT" 2>"$ERR" &
pid=$!
it_on_cleanup "kill -9 $pid"
wait_for_copy 60 "$pid" "$T" "$T/.long.img.vmsnap-revert-*" ||
  { show_output; fail "kill -9 revert: the staging copy never started"; }
freeze_then_kill "$pid" "kill -9 revert"
expect 8 "kill -9 revert: create after the kill" -- create long --name probe
ok "kill -9 revert: recover" recover long
if [ "$PHASE_AT_KILL" = finish ]; then
  # The copy outran the test: the kill came past the point of no return,
  # so recover must have completed the revert.
  echo "the staging copy had ended when snapctl was killed (fast disk)"
  state_is long "$disk" "kill -9 revert (finishing) + recover" s1 s1 "$shal0" "s1=$shal0"
  assert_eq "$(sha "$small")" "$shas0" "kill -9 revert (finishing) + recover: vdb"
else
  assert_eq "$PHASE_AT_KILL" stage "journal phase when snapctl was killed"
  state_is long "$disk" "kill -9 revert + recover" s1 s1 "$shal1" "s1=$shal0"
  assert_eq "$(sha "$small")" "$shas1" "kill -9 revert + recover: vdb"
  assert_eq "$(stat -c %i "$disk")" "$ino" "kill -9 revert + recover: the disk was replaced"
fi
ok "revert after recover" revert long s1
assert_eq "$(sha "$disk")" "$shal0" "vda after the revert that followed the killed one"
assert_eq "$(sha "$small")" "$shas0" "vdb after the revert that followed the killed one"
note "kill -9 during a two-disk revert's staging copy, then recover: disks unchanged"

it_done
