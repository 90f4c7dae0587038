#!/bin/bash
# check-headers.sh — prove the public headers are self-contained and portable:
# each one, included alone (and twice, for its guard), must compile as C99
# (-pedantic) and as C++11 with warnings as errors; and a plugin written in
# either language with VMSNAP_REGISTER_PLUGIN must export exactly the
# unmangled entry point the loader looks up (vmsnap_plugin_init).
#
# Usage: tests/abi/check-headers.sh [SOURCE_DIR]   (CC, CXX, NM may be set)
# Exits non-zero, with a FAIL: line per failed check, if any check fails.
set -uo pipefail

src=${1:-${SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}}
inc=$src/include
CC=${CC:-gcc}
CXX=${CXX:-g++}
NM=${NM:-nm}
headers=(vmsnap/vmsnap.h vmsnap/vmsnap-plugin.h)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

check() { # check NAME CMD... : runs CMD, reports PASS/FAIL with its output
  local name=$1
  shift
  if "$@" >"$tmp/out" 2>&1; then
    echo "PASS: $name"
  else
    echo "FAIL: $name"
    sed 's/^/    /' "$tmp/out"
    failed=1
  fi
}

for h in "${headers[@]}"; do
  [ -f "$inc/$h" ] || { echo "FAIL: $inc/$h is missing"; failed=1; continue; }
  base=$(basename "$h" .h)
  printf '#include <%s>\n#include <%s>\nint main(void) { return 0; }\n' "$h" "$h" >"$tmp/$base.c"
  printf '#include <%s>\n#include <%s>\nint main() { return 0; }\n' "$h" "$h" >"$tmp/$base.cc"
  check "$h as C99" "$CC" -std=c99 -pedantic -Wall -Wextra -Werror -I"$inc" \
    -c "$tmp/$base.c" -o "$tmp/$base.c.o"
  check "$h as C++11" "$CXX" -std=c++11 -pedantic -Wall -Wextra -Werror -I"$inc" \
    -c "$tmp/$base.cc" -o "$tmp/$base.cc.o"
done

# A plugin's only export must be the C name the core dlsyms, in C and in C++.
cat >"$tmp/plugin.c" <<'EOF'
#include <vmsnap/vmsnap-plugin.h>
static int probe(const vmsnap_disk *d) { (void)d; return 0; }
static uint64_t caps(const vmsnap_disk *d) { (void)d; return 0; }
static int op(vmsnap_job *j, const vmsnap_job_info *i) { (void)j; (void)i; return 0; }
static const vmsnap_plugin ops = {
  .name = "c", .version = "1", .probe = probe, .capabilities = caps,
  .create = op, .remove = op, .revert = op,
};
VMSNAP_REGISTER_PLUGIN(ops)
EOF
cat >"$tmp/plugin.cc" <<'EOF'
#include <vmsnap/vmsnap-plugin.h>
static int probe(const vmsnap_disk *) { return 0; }
static uint64_t caps(const vmsnap_disk *) { return 0; }
static int op(vmsnap_job *, const vmsnap_job_info *) { return 0; }
static vmsnap_plugin make_ops() {
  vmsnap_plugin p = vmsnap_plugin(); /* C++11: no designated initialisers */
  p.name = "cxx"; p.version = "1"; p.probe = probe; p.capabilities = caps;
  p.create = op; p.remove = op; p.revert = op;
  return p;
}
static const vmsnap_plugin ops = make_ops();
VMSNAP_REGISTER_PLUGIN(ops)
EOF
exports_only_init() { # exports_only_init SO
  local syms
  syms=$("$NM" -D --defined-only "$1" | awk '$2 ~ /^[TDBRVWiu]$/ {print $3}') || return 1
  echo "defined dynamic symbols: ${syms:-<none>}"
  [ "$syms" = "vmsnap_plugin_init" ]
}
# (Warnings are the header checks' business above; here only the symbol counts.)
check "VMSNAP_REGISTER_PLUGIN in C99" "$CC" -std=c99 -pedantic -Wall \
  -fPIC -shared -fvisibility=hidden -I"$inc" "$tmp/plugin.c" -o "$tmp/plugin-c.so"
[ -f "$tmp/plugin-c.so" ] && check "C plugin exports only vmsnap_plugin_init" \
  exports_only_init "$tmp/plugin-c.so"
check "VMSNAP_REGISTER_PLUGIN in C++11" "$CXX" -std=c++11 -Wall \
  -fPIC -shared -fvisibility=hidden -I"$inc" "$tmp/plugin.cc" -o "$tmp/plugin-cxx.so"
[ -f "$tmp/plugin-cxx.so" ] && check "C++ plugin exports only vmsnap_plugin_init" \
  exports_only_init "$tmp/plugin-cxx.so"

if [ "$failed" -ne 0 ]; then
  echo "FAIL: public headers are not self-contained or not usable from C99/C++11"
  exit 1
fi
echo "PASS: all header checks"
