#!/usr/bin/env bash
# The main job, end to end, on a real disk image: installs what is missing,
# builds, then snapshots a raw disk, changes it, lists, reverts, verifies
# the content is back, and deletes the snapshot — with progress.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
"$root/scripts/build.sh" "$root/build"

snapctl="$root/build/bin/snapctl"
work=$(mktemp -d /var/tmp/vmsnap-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
export VMSNAP_STATE_DIR="$work/state"
disk="$work/disk.img"
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }

# A 2 GiB sparse disk with 768 MiB of data in three places.
truncate -s 2G "$disk"
for off in 0 600 1400; do
  dd if=/dev/urandom of="$disk" bs=1M count=256 seek="$off" conv=notrunc status=none
done
before=$(sha256sum "$disk" | cut -d' ' -f1)
echo "disk $disk: 2 GiB, $(du -h "$disk" | cut -f1) allocated, sha256 ${before:0:16}…"

run "$snapctl" plugins
run "$snapctl" --progress bar create demo-vm --disk "vda=$disk" --name before-upgrade \
    --description "known good"
say "the guest writes: 64 MiB of new data over the disk"
dd if=/dev/urandom of="$disk" bs=1M count=64 seek=100 conv=notrunc status=none
echo "sha256 now ${before:0:0}$(sha256sum "$disk" | cut -c1-16)…"
run "$snapctl" --progress bar create demo-vm --name after-upgrade
run "$snapctl" list demo-vm
run "$snapctl" list demo-vm --tree
run "$snapctl" --progress bar revert demo-vm before-upgrade
after=$(sha256sum "$disk" | cut -d' ' -f1)
if [ "$after" = "$before" ]; then
  echo "verified: the disk is byte for byte what it was at before-upgrade (sha256 ${after:0:16}…)"
else
  echo "DEMO FAILED: content after revert differs" >&2
  exit 1
fi
run "$snapctl" info demo-vm after-upgrade
run "$snapctl" delete demo-vm after-upgrade
run "$snapctl" delete demo-vm before-upgrade
run "$snapctl" list demo-vm
echo
echo "demo complete: snapshot, change, list, revert, verify, delete on a real 2 GiB image"
