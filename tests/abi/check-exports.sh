#!/usr/bin/env bash
# libvmsnap exports only vmsnap_* (versioned VMSNAP_1) and has the ABI-major
# soname; a plugin exports only its entry point.
set -euo pipefail
lib=${1:?usage: check-exports.sh LIBVMSNAP PLUGIN.so}
plugin=${2:?}
fail() { echo "FAIL: check-exports: $*"; exit 1; }

others=$(nm -D --defined-only "$lib" | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^vmsnap_' || true)
[ -z "$others" ] || fail "$lib exports symbols outside vmsnap_*: $others"
n=$(nm -D --defined-only "$lib" | awk '$2 == "T"' | wc -l)
[ "$n" -ge 30 ] || fail "$lib exports only $n functions; the version map is dropping the API"
objdump -T "$lib" | grep -q 'VMSNAP_1 *vmsnap_create$' || fail "vmsnap_create is not versioned VMSNAP_1"
readelf -d "$lib" | grep -q 'SONAME.*libvmsnap\.so\.1\]' || fail "soname is not libvmsnap.so.1"
exports=$(nm -D --defined-only "$plugin" | awk '$2 == "T" {print $3}')
[ "$exports" = "vmsnap_plugin_init" ] || fail "$plugin exports '$exports', expected only vmsnap_plugin_init"
echo "ok: $(basename "$lib") exports $n vmsnap_* functions (VMSNAP_1), $(basename "$plugin") only vmsnap_plugin_init"
