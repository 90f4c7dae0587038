#!/bin/bash
# test-btrfs-many.sh — 500 snapshots of one subvolume on a real btrfs: each
# holds its own data (checked on a sample), list shows them all and nothing
# foreign, a revert to an old one keeps the 499 others, deletes work among
# them. Times are printed for the reader; bench/bench-btrfs.sh judges them.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
it_init test-btrfs-many
need_tool mkfs.btrfs btrfs
[ -f "$PLUGIN_BUILD_DIR/btrfs.so" ] || fail "no btrfs plugin at $PLUGIN_BUILD_DIR/btrfs.so"

truncate -s 1G "$T/btrfs.img"
mkfs.btrfs -q "$T/btrfs.img" >"$T/mkfs.log" 2>&1 || { cat "$T/mkfs.log"; fail "mkfs.btrfs failed"; }
M=$T/mnt
mount_img "$T/btrfs.img" "$M"
V=$M/vm
btrfs subvolume create "$V" >/dev/null
make_dense "$V/disk.raw" 16 base

N=500
ms() { echo $(($(date +%s%N) / 1000000)); }
t_first=0
t_last=0
for i in $(seq 1 $N); do
  printf 'generation %d\n' "$i" >"$V/gen"
  t0=$(ms)
  if [ "$i" = 1 ]; then ok "create n1" create many --disk "vda=$V" --name n1
  else ok "create n$i" create many --name "n$i"; fi
  t1=$(ms)
  [ "$i" -gt 10 ] || t_first=$((t_first + t1 - t0))
  [ "$i" -le $((N - 10)) ] || t_last=$((t_last + t1 - t0))
done
# Information only: speed is judged by bench/bench-btrfs.sh, never by a
# timed test (a loaded CI machine would make it flaky).
echo "create: first 10 took $t_first ms, last 10 took $t_last ms"
[ "$(btrfs subvolume list "$M" | grep -c /vmsnap-n)" = $N ] || fail "expected $N snapshot subvolumes"
for i in 1 2 77 250 499 500; do
  assert_eq "$(cat "$M/.vmsnap/many/vm/vmsnap-n$i/gen")" "generation $i" "content of snapshot n$i"
done
ok "list $N" list many
[ "$(grep -c '^n[0-9]' "$OUT")" = $N ] || { show_output; fail "list does not show $N snapshots"; }
! grep -q foreign "$OUT" || { show_output; fail "list shows foreign snapshots among vmsnap's own"; }
note "$N snapshots made, each with its own data, all listed"

sum=$(sha "$M/.vmsnap/many/vm/vmsnap-n250/disk.raw")
ok "revert to n250 with $N snapshots" revert many n250
assert_eq "$(cat "$V/gen")" "generation 250" "the disk after revert to n250"
assert_eq "$(sha "$V/disk.raw")" "$sum" "checksum after revert to n250"
assert_eq "$(cat "$M/.vmsnap/many/vm/vmsnap-n500/gen")" "generation 500" "n500 after the revert"
[ "$(btrfs subvolume list "$M" | grep -c /vmsnap-n)" = $N ] || fail "the revert lost snapshots"
note "revert among $N keeps every other snapshot"

t0=$(ms)
for i in $(seq 1 10); do ok "delete n$((i * 40))" delete many "n$((i * 40))"; done
t1=$(ms)
echo "10 deletes at ~$N snapshots: $((t1 - t0)) ms"
[ "$(btrfs subvolume list "$M" | grep -c /vmsnap-n)" = $((N - 10)) ] || fail "after 10 deletes"
assert_eq "$(cat "$M/.vmsnap/many/vm/vmsnap-n499/gen")" "generation 499" "n499 after the deletes"
note "delete among $N"
it_done
