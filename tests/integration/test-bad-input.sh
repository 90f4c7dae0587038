#!/bin/bash
# test-bad-input.sh — what snapctl refuses, with which exit status, and that
# a refusal changes nothing (no state written, no snapshot file):
#   bad snapshot and domain names (exit 2), the longest name (255 bytes)
#   and UTF-8 names accepted; a missing disk (3), bad --disk specs (2), an
#   unknown backend (3), a duplicate name (9), missing snapshots and
#   domains (3), a disk held open by a process or locked by qemu-nbd (4,
#   naming the holder), a block device without file= (2, mentioning file=),
#   and the hint for an undeclared qcow2 file.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
it_init test-bad-input
need_tool qemu-img qemu-nbd

disk=$T/vm.img
make_sparse "$disk" 16 25
sha0=$(sha "$disk")

# unchanged DOMAIN WHAT: no state for DOMAIN, no snapshot files by the disk.
unchanged() {
  [ ! -e "$ST/domains/$1" ] || fail "$2: state written for domain $1: $(find "$ST/domains/$1")"
  [ -z "$(ls -A "$(dd_dir "$disk")" 2>/dev/null)" ] || fail "$2: snapshot files made: $(ls -A "$(dd_dir "$disk")")"
  assert_eq "$(sha "$disk")" "$sha0" "$2: the disk"
}

# refuse CODE WHAT ARGS...: snapctl ARGS exits CODE and domain "fresh" is untouched.
refuse() {
  local code=$1 what=$2
  shift 2
  expect "$code" "$what" -- "$@"
  grep -q '^snapctl: error: ' "$ERR" || { show_output; fail "$what: no 'snapctl: error:' message"; }
  unchanged fresh "$what"
}

# ---- snapshot names ------------------------------------------------------------
long255=$(printf 'n%.0s' $(seq 255))
long256=${long255}x
for bad in "" "a/b" ".." "x..y" $'a\x01b' $'tab\there' $'del\x7f' $'\xff\xfe' "$long256" ".hidden" "-dash"; do
  shown=$(printf %q "$bad")
  refuse 2 "snapshot name ${shown:0:40}" create fresh --disk "vda=$disk" "--name=$bad"
  err_has 'name' "snapshot name ${shown:0:40}: the message is about the name"
done
note "bad snapshot names refused with exit 2, nothing written"

for bad in "a/b" ".." ".x" "-x" $'a\nb'; do
  shown=$(printf %q "$bad")
  refuse 2 "domain name $shown" create "$bad" --disk "vda=$disk" --name s1
  [ -z "$(ls -A "$ST/domains" 2>/dev/null)" ] || fail "domain name $shown: state written: $(ls -A "$ST/domains")"
done
note "bad domain names refused with exit 2"

# The longest name, and names that need escaping in a file name, work.
ok "a 255-byte name" create long --disk "vda=$disk" --name "$long255"
files=("$(dd_dir "$disk")"/vmsnap-*.raw)
[ ${#files[@]} = 1 ] || fail "a 255-byte name: expected one snapshot file, found ${#files[@]}"
assert_eq "$(sha "${files[0]}")" "$sha0" "a 255-byte name: checksum of the snapshot file"
ok "info of the 255-byte name" info long "$long255"
ok "delete of the 255-byte name" delete long "$long255"
[ ! -e "${files[0]}" ] || fail "a 255-byte name: delete left ${files[0]}"
ok "a UTF-8 name with spaces" create long --name "Grüße vom Tag 1"
assert_eq "$(names long)" "Grüße vom Tag 1" "the UTF-8 name as listed"
ok "delete of the UTF-8 name" delete long "Grüße vom Tag 1"
[ -z "$(ls -A "$(dd_dir "$disk")" 2>/dev/null)" ] || fail "UTF-8 name: delete left $(ls -A "$(dd_dir "$disk")")"
note "255-byte and UTF-8 names accepted"

# ---- disks ---------------------------------------------------------------------------
refuse 3 "a missing disk" create fresh --disk "vda=$T/nope.img" --name s1
err_has 'nope.img' "a missing disk: the message names the path"
for spec in "vda" "=$disk" "vda=" "vda=$disk,format=vmdk" "vda=$disk,bogus=1" \
  "vda=$disk,format=raw,format=raw" "vda=$disk,mode=sideways" "v/da=$disk" "vda=$disk,nokey"; do
  refuse 2 "--disk '$spec'" create fresh --disk "$spec" --name s1
done
refuse 2 "the same disk twice" create fresh --disk "vda=$disk" --disk "vdb=$disk" --name s1
touch "$T/other.img"
refuse 2 "the same target twice" create fresh --disk "vda=$disk" --disk "vda=$T/other.img" --name s1
refuse 3 "an unknown backend" create fresh --disk "vda=$disk,backend=nope" --name s1
err_has 'nope' "an unknown backend: the message names it"
# Refused by the backend's prepare, after the domain's store was opened: what
# the store made for the new domain goes again, so the domain stays unknown.
refuse 2 "a relative file=" create fresh --disk "vda=$disk,file=rel.raw" --name s1
err_has 'absolute' "a relative file=: the message says it must be absolute"
if [ -e rel.raw ] || [ -e "$T/rel.raw" ]; then fail "a relative file=: a file was made"; fi
refuse 2 "a raw file declared qcow2" create fresh --disk "vda=$disk,format=qcow2" --name s1
expect 3 "list of a domain whose first create was refused" -- list fresh
note "bad disks and disk specs refused"

# ---- duplicate name, missing snapshots and domains ---------------------------------
ok "create s1" create dom --disk "vda=$disk" --name s1
f1=$(dd_file "$disk" s1)
m1=$(stat -c %Y.%i "$f1")
expect 9 "a duplicate snapshot name" -- create dom --name s1
err_has "s1" "a duplicate name: the message names it"
assert_eq "$(names dom)" s1 "snapshots after the duplicate create"
assert_eq "$(stat -c %Y.%i "$f1")" "$m1" "the existing snapshot file after the duplicate create"
assert_eq "$(sha "$f1")" "$sha0" "the existing snapshot after the duplicate create"

expect 3 "info of a missing snapshot" -- info dom nosuch
expect 3 "revert to a missing snapshot" -- revert dom nosuch
expect 3 "delete of a missing snapshot" -- delete dom nosuch
err_has nosuch "delete of a missing snapshot: the message names it"
expect 3 "list of an unknown domain" -- list nodom
expect 3 "info in an unknown domain" -- info nodom s1
expect 3 "revert in an unknown domain" -- revert nodom s1
expect 3 "delete in an unknown domain" -- delete nodom s1
[ ! -e "$ST/domains/nodom" ] || fail "commands on an unknown domain created its state"
assert_eq "$(names dom)" s1 "snapshots after the refused commands"
note "duplicate name exit 9; missing snapshots and domains exit 3"

# ---- usage -------------------------------------------------------------------------
expect 2 "an unknown command" -- frobnicate
expect 2 "an unknown option" -- create dom --bogus
expect 2 "create without a domain" -- create
expect 2 "revert without a name" -- revert dom
expect 2 "delete with --children and --children-only" -- delete dom s1 --children --children-only
assert_eq "$(names dom)" s1 "snapshots after the usage errors"
note "usage errors exit 2"

# ---- a disk in use ------------------------------------------------------------------
sleep 60 <>"$disk" &
holder=$!
it_on_cleanup "kill $holder"
sleep 0.2
expect 4 "create of a disk held open by another process" -- create dom --name s2
err_has "$holder|sleep" "the busy message names the holder (pid $holder, sleep)"
[ ! -e "$(dd_file "$disk" s2)" ] || fail "create of a busy disk made a snapshot file"
assert_eq "$(names dom)" s1 "snapshots after the busy create"
assert_no_journal dom "busy create"
scribble "$disk" 2 1 busy
sha1=$(sha "$disk")
expect 4 "revert of a disk held open by another process" -- revert dom s1
err_has "$holder|sleep" "the busy revert names the holder"
assert_eq "$(sha "$disk")" "$sha1" "the busy disk after the refused revert"
assert_no_leftovers "$T"
kill "$holder"
wait "$holder" 2>/dev/null || true
note "disk held open: exit 4 naming the holder"

# A QEMU image lock (qemu-nbd serving the file).
qemu-nbd -f raw -t -k "$T/nbd.sock" "$disk" >"$T/nbd.log" 2>&1 &
nbd=$!
it_on_cleanup "kill $nbd"
for _ in $(seq 100); do [ -S "$T/nbd.sock" ] && break; sleep 0.05; done
[ -S "$T/nbd.sock" ] || { cat "$T/nbd.log"; fail "qemu-nbd did not start"; }
expect 4 "create of a disk qemu-nbd holds" -- create dom --name s2
err_has "qemu-nbd|$nbd" "the busy message names qemu-nbd"
[ ! -e "$(dd_file "$disk" s2)" ] || fail "create of a locked disk made a snapshot file"
kill "$nbd"
wait "$nbd" 2>/dev/null || true
note "disk locked by qemu-nbd: exit 4 naming it"

# ---- a block device without file= ------------------------------------------------------
truncate -s 8M "$T/blk.img"
dev=
loop_attach "$T/blk.img" dev
expect 2 "a block device without file=" -- create blk --disk "vda=$dev" --name s1
err_has 'file=' "the refusal of a block device mentions file="
[ -z "$(find "$ST/domains/blk/snapshots" -type f 2>/dev/null)" ] || fail "refused block device: metadata written"
assert_no_journal blk "refused block device"
note "block device without file= refused with exit 2, mentioning file="

# ---- the qcow2 hint ----------------------------------------------------------------------
qemu-img create -q -f qcow2 "$T/q.qcow2" 16M || fail "qemu-img create failed"
sc create q --disk "vda=$T/q.qcow2" --name s1
err_has 'format=qcow2' "an undeclared qcow2 file: hint on stderr"
! grep -q 'format=qcow2' "$OUT" || fail "the qcow2 hint went to stdout"
sc create q2 --disk "vda=$T/q.qcow2,format=qcow2" --name s1
! grep -qi 'looks like a qcow2' "$ERR" || { show_output; fail "the qcow2 hint is printed although format=qcow2 was given"; }
note "qcow2 hint on stderr for an undeclared qcow2 file only"

it_done
