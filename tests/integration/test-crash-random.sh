#!/bin/bash
# test-crash-random.sh — kill -9 at moments nobody chose, then recover.
#
# test-crash-recover.sh stops an op at each named crash point; this one
# kills snapctl at a random moment of its run (up to 1.2 times what an
# unhindered create takes here, measured first), so the kill lands anywhere: before
# the journal, inside a copy, between the renames of a batch, after the
# commit record, during the unflushed clear. ITERATIONS times: a create of
# a dd snapshot is killed and recovered, then, when it was kept, a delete
# of it is killed and recovered. After every recover the domain must be in
# one of the two states the op allows, whole:
#   - no journal left, no temporary file (.part, .tmp) anywhere;
#   - the snapshot recorded if and only if its copy exists, and the copy
#     holds the disk's content;
#   - the disk itself unchanged (neither op writes it).
# The seed is printed; VMSNAP_TEST_SEED repeats a run.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
it_init test-crash-random

ITERATIONS=${VMSNAP_TEST_ITERATIONS:-60}
seed=${VMSNAP_TEST_SEED:-$$}
RANDOM=$seed
echo "seed $seed (VMSNAP_TEST_SEED), $ITERATIONS iterations"

disk=$T/img/d.img
mkdir -p "$T/img"
make_sparse "$disk" 128 25 random-kill
sha0=$(sha "$disk")
ok "setup: a base snapshot" create d --disk "vda=$disk" --name base
t0=$EPOCHREALTIME
ok "setup: how long a create takes" create d --name probe
t1=$EPOCHREALTIME
span=$(( (${t1/./} - ${t0/./}) * 12 / 10000 + 1 )) # ms
ok "setup: delete the probe" delete d probe
echo "a create takes $(( (${t1/./} - ${t0/./}) / 1000 )) ms: kills land in 0-$span ms"

# killed_at MS ARGS...: snapctl ARGS in the background, SIGKILLed after MS
# milliseconds unless it ended first.
killed_at() {
  local ms=$1 pid
  shift
  "$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" --progress none "$@" \
    >"$OUT" 2>"$ERR" &
  pid=$!
  sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# whole WHAT NAME: after recover, NAME is recorded with its copy, or gone
# with it; nothing half-made is left. STATE is then "kept" or "gone".
whole() {
  local what=$1 name=$2 file
  file=$(dd_file "$disk" "$name")
  assert_no_journal d "$what"
  assert_no_leftovers "$T"
  [ -z "$(find "$ST" -name '.*.tmp')" ] || fail "$what: temporary files left: $(find "$ST" -name '.*.tmp')"
  assert_eq "$(sha "$disk")" "$sha0" "$what: the disk"
  sc info d "$name"
  if [ "$RC" = 0 ]; then
    [ -f "$file" ] || fail "$what: $name is recorded but $file is missing"
    assert_eq "$(sha "$file")" "$sha0" "$what: the content of $name's copy"
    STATE=kept
  else
    [ "$RC" = 3 ] || { show_output; fail "$what: info $name exited $RC, expected 0 or 3"; }
    [ ! -e "$file" ] || fail "$what: $name is not recorded but $file is left"
    STATE=gone
  fi
}

created=0 rolled=0 deleted=0 undeleted=0
for ((i = 1; i <= ITERATIONS; i++)); do
  killed_at $((RANDOM % span)) create d --name "k$i"
  ok "iteration $i: recover after a killed create" recover d
  whole "iteration $i, create" "k$i"
  if [ "$STATE" = gone ]; then
    rolled=$((rolled + 1))
    continue
  fi
  created=$((created + 1))
  killed_at $((RANDOM % span)) delete d "k$i"
  ok "iteration $i: recover after a killed delete" recover d
  whole "iteration $i, delete" "k$i"
  if [ "$STATE" = kept ]; then
    undeleted=$((undeleted + 1))
    ok "iteration $i: delete k$i" delete d "k$i"
  else
    deleted=$((deleted + 1))
  fi
done
assert_eq "$(sha "$(dd_file "$disk" base)")" "$sha0" "the base snapshot's copy after the kills"
echo "creates: $created kept, $rolled rolled back; deletes of the kept: $deleted done, $undeleted undone"
note "$ITERATIONS creates and their deletes killed at random moments: each recover left the old or the new state, whole"

it_done
