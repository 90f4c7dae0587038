# shellcheck shell=bash
# lib.sh — shared by build-image.sh and run-in-guest.sh (source it).

# vm_packages: the guest's package names, one per line, comments dropped.
vm_packages() {
  sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$VM_DIR/packages"
}

# vm_inputs_hash: what the image is built from. The scripts and the package
# list, and the host's versions of the libraries host-built binaries link
# against: after a host upgrade the guest must be upgraded too, or a binary
# built against the newer host library may not load in the guest.
vm_inputs_hash() {
  {
    cat "$VM_DIR/build-image.sh" "$VM_DIR/lib.sh" "$VM_DIR/packages"
    dpkg-query -W -f '${Package} ${Version}\n' \
      libc6 libjansson4 libuuid1 libbtrfsutil1 libdevmapper1.02.1 2>/dev/null || true
  } | sha256sum | cut -d' ' -f1
}

# vm_image_ok DIR: DIR holds a complete image built from the current inputs.
vm_image_ok() {
  local f
  for f in root.img vmlinuz initrd.img stamp; do
    [ -s "$1/$f" ] || return 1
  done
  [ "$(cat "$1/stamp")" = "$(vm_inputs_hash)" ]
}
