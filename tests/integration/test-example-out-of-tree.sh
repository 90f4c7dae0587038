#!/bin/bash
# test-example-out-of-tree.sh — a third party can build a backend plugin
# against an installed vmsnap, and the installed snapctl loads it.
#
# Installs the already-built tree into a temporary prefix, builds
# plugins/example/example.c there with nothing but cc and pkg-config, and runs
# the INSTALLED snapctl: with --plugin-dir it must list "example" (from our
# .so, not the copy the project installs); without it, it must find the
# installed dd plugin by itself. Also checks the installed headers, vmsnap.pc
# and the snapctl(1) man page.
#
# Environment (set by ctest): BUILD_DIR (a built tree), SOURCE_DIR; SNAPCTL
# (the build tree's snapctl) is only reported — this test runs the installed one.
set -euo pipefail
set -E

fail() {
  echo "FAIL: $*"
  exit 1
}
# shellcheck disable=SC2154 # rc is assigned inside the trap string
trap 'rc=$?; echo "FAIL: line $LINENO: \"$BASH_COMMAND\" exited with $rc"; exit $rc' ERR

: "${BUILD_DIR:?set BUILD_DIR to a built vmsnap tree (ctest does)}"
SOURCE_DIR=${SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
[ -d "$BUILD_DIR" ] || fail "BUILD_DIR $BUILD_DIR is not a directory"
[ -f "$SOURCE_DIR/plugins/example/example.c" ] || fail "no plugins/example/example.c under $SOURCE_DIR"
echo "build tree: $BUILD_DIR (its snapctl: ${SNAPCTL:-unset}; not used here)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The core refuses plugin files and dirs writable by group or others: install
# and build with a umask that cannot produce them, whatever ctest inherited.
umask 022
# Only the installed tree may be used: no build-tree library or plugin path.
unset LD_LIBRARY_PATH VMSNAP_PLUGIN_PATH VMSNAP_STATE_DIR PKG_CONFIG_PATH
prefix=$tmp/prefix

# ---- install ----------------------------------------------------------------
cmake --install "$BUILD_DIR" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; fail "cmake --install $BUILD_DIR --prefix $prefix failed"; }

snapctl=$prefix/bin/snapctl
[ -x "$snapctl" ] || fail "installed snapctl missing: $snapctl"
[ -s "$prefix/share/man/man1/snapctl.1" ] || fail "installed man page missing: share/man/man1/snapctl.1"

pc=$(find "$prefix" -path '*/pkgconfig/vmsnap.pc' -print -quit)
[ -n "$pc" ] || fail "no vmsnap.pc installed under $prefix"
echo "vmsnap.pc: $pc"
# vmsnap.pc names the prefix chosen at configure time; a relocated install is
# used by overriding that one variable (libdir/includedir derive from it).
pc_query() { PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --define-variable=prefix="$prefix" "$@" vmsnap; }
cflags=$(pc_query --cflags) || fail "pkg-config --cflags vmsnap failed with $pc"
includedir=$(pc_query --variable=includedir)
plugindir=$(pc_query --variable=plugindir)
echo "cflags: $cflags; plugindir: $plugindir"
case $includedir in "$prefix"/*) ;; *) fail "vmsnap.pc includedir $includedir is outside $prefix" ;; esac
for h in vmsnap.h vmsnap-plugin.h; do
  [ -f "$includedir/vmsnap/$h" ] || fail "installed header missing: $includedir/vmsnap/$h"
done
[ -f "$plugindir/dd.so" ] || fail "installed dd plugin missing: $plugindir/dd.so"

# The installed snapctl must use the installed libvmsnap (its RPATH).
lib=$(ldd "$snapctl" | awk '/libvmsnap\.so/ {print $3}')
case $lib in "$prefix"/*) ;; *) fail "installed snapctl uses libvmsnap from '${lib:-nowhere}', not $prefix" ;; esac

# ---- no library is looked up in the current directory ------------------------
# An empty RUNPATH entry means "the current directory" to the dynamic loader:
# whoever controls the directory snapctl runs in could make it load any code.
# Only snapctl carries a RUNPATH ($ORIGIN-relative); libvmsnap and plugins none.
for f in "$snapctl" "$BUILD_DIR/bin/snapctl" "$prefix"/lib*/libvmsnap.so.1 "$plugindir"/*.so \
         "$BUILD_DIR"/lib*/libvmsnap.so.1 "$BUILD_DIR"/lib*/vmsnap/plugins/*.so; do
  [ -e "$f" ] || fail "no such file to check: $f"
  rp=$(readelf -d "$f" | sed -n 's/.*(R\(UN\)\{0,1\}PATH).*\[\(.*\)\]$/\2/p')
  # shellcheck disable=SC2016 # a literal $ORIGIN
  case $f in
    */snapctl) case $rp in '$ORIGIN/../lib' | '$ORIGIN/../lib/'*[!:]) ;;
      *) fail "$f: RUNPATH '$rp', expected only \$ORIGIN/../<libdir>" ;; esac ;;
    *) [ -z "$rp" ] || fail "$f: RUNPATH '$rp'; libraries and plugins need none" ;;
  esac
done
# And by behaviour: garbage libraries in the working directory change nothing.
mkdir "$tmp/cwd"
for l in libjansson.so.4 libvmsnap.so.1 libbtrfsutil.so.1 libdevmapper.so.1.02.1 libuuid.so.1; do
  echo garbage >"$tmp/cwd/$l"
done
for s in "$snapctl" "$BUILD_DIR/bin/snapctl"; do
  (cd "$tmp/cwd" && "$s" plugins >"$tmp/cwd.out" 2>&1) ||
    { cat "$tmp/cwd.out"; fail "$s run in a directory of garbage libraries fails: it looks there"; }
done
echo "ok: no binary looks for libraries in the current directory"

# So that "example" can only come from our build, drop the installed copy.
rm -f "$plugindir/example.so"

# ---- build the example out of tree ----------------------------------------
mkdir "$tmp/src"
cp "$SOURCE_DIR/plugins/example/example.c" "$tmp/src/"
# shellcheck disable=SC2086 # cflags is a list of words
(cd "$tmp/src" && cc $cflags -fPIC -shared -fvisibility=hidden example.c -o example.so) ||
  fail "building example.c out of tree with: cc $cflags -fPIC -shared"
nm -D --defined-only "$tmp/src/example.so" | grep -qw vmsnap_plugin_init ||
  fail "example.so does not export vmsnap_plugin_init"

plugdir=$tmp/plugins
mkdir -m 0755 "$plugdir"
install -m 0755 "$tmp/src/example.so" "$plugdir/example.so"

# ---- the installed snapctl loads it -----------------------------------------
has_name() { # has_name NAME FILE: a JSON object with "name": NAME
  grep -Eq "\"name\"[[:space:]]*:[[:space:]]*\"$1\"" "$2"
}
"$snapctl" --plugin-dir "$plugdir" --state-dir "$tmp/state" plugins --json >"$tmp/out.json" 2>"$tmp/err" ||
  { cat "$tmp/out.json" "$tmp/err"; fail "snapctl --plugin-dir $plugdir plugins --json exited non-zero"; }
if command -v jq >/dev/null; then
  jq . "$tmp/out.json" >/dev/null 2>&1 || { cat "$tmp/out.json"; fail "plugins --json did not print valid JSON"; }
fi
has_name example "$tmp/out.json" ||
  { cat "$tmp/out.json" "$tmp/err"; fail "installed snapctl --plugin-dir $plugdir does not list \"example\""; }
if grep -q '"path"' "$tmp/out.json"; then
  grep -q "$plugdir/example.so" "$tmp/out.json" ||
    { cat "$tmp/out.json"; fail "\"example\" was not loaded from $plugdir/example.so"; }
fi
echo "ok: installed snapctl loads the out-of-tree example plugin"

# ---- and finds its own plugins without being told ---------------------------
"$snapctl" --state-dir "$tmp/state" plugins >"$tmp/out.txt" 2>"$tmp/err" ||
  { cat "$tmp/out.txt" "$tmp/err"; fail "installed snapctl plugins (no --plugin-dir) exited non-zero"; }
grep -qw dd "$tmp/out.txt" ||
  { cat "$tmp/out.txt" "$tmp/err"; fail "installed snapctl without --plugin-dir does not list \"dd\" from $plugindir"; }
echo "ok: installed snapctl finds the installed dd plugin by itself"

echo "PASS: out-of-tree plugin build and installed layout"
