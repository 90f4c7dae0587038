#!/bin/bash
# test-build-tree-and-install.sh — plugin discovery and safety, machine
# output and file modes:
#  * snapctl from the build tree (also through a symlink) finds the dd plugin
#    with no --plugin-dir and no VMSNAP_PLUGIN_PATH; --plugin-dir wins over
#    VMSNAP_PLUGIN_PATH, which wins over the binary's own plugin dir;
#  * a plugin dir writable by others (0777) or by its group is refused with a
#    warning naming it, nothing loaded from it; a plugin file mode 0666, one
#    owned by another user, a garbage .so and a copy of libc named x.so are
#    each skipped with a warning naming the file while the others load; a
#    backend found twice on the path loads once;
#  * --json of plugins, list, info, create, revert parses as JSON (also
#    with quotes, newlines and control characters in a description), so are
#    the --progress json lines on stderr, and
#    text output never passes control characters through;
#  * with umask 000: state dirs 0700, snapshot JSON, domain.json, lock and
#    journal 0600, dd snapshot files 0600 and their dirs 0700.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
it_init test-build-tree-and-install

bt_snapctl=$BUILD_DIR/bin/snapctl
[ -x "$bt_snapctl" ] || fail "no snapctl in the build tree at $bt_snapctl"

# run SNAPCTL ARGS...: like sc, without --plugin-dir.
run() {
  local bin=$1
  shift
  RC=0
  "$bin" --state-dir "$ST" --progress none "$@" >"$OUT" 2>"$ERR" || RC=$?
}

# listed NAMES...: the last `plugins --json` output lists exactly these backends.
listed() {
  local got
  got=$(python3 -c '
import json, sys
print(" ".join(sorted(p["name"] for p in json.load(open(sys.argv[1])))) or "-")' "$OUT") ||
    { show_output; fail "plugins --json did not print JSON"; }
  [ "$got" = "$1" ] || { show_output; fail "$2: backends loaded: '$got', expected '$1'"; }
}

# ---- the build tree's snapctl finds its plugins ------------------------------------
run "$bt_snapctl" plugins
[ "$RC" = 0 ] || { show_output; fail "build-tree snapctl plugins exited $RC"; }
grep -q '^dd ' "$OUT" || { show_output; fail "build-tree snapctl without --plugin-dir does not list dd"; }
grep -q "path: *$(realpath "$PLUGIN_BUILD_DIR")/dd.so" "$OUT" ||
  { show_output; fail "dd was not loaded from the build tree's $PLUGIN_BUILD_DIR"; }
mkdir "$T/bin"
ln -s "$bt_snapctl" "$T/bin/snapctl"
run "$T/bin/snapctl" --json plugins
[ "$RC" = 0 ] || { show_output; fail "snapctl through a symlink exited $RC"; }
python3 -c '
import json, sys
assert "dd" in [p["name"] for p in json.load(open(sys.argv[1]))]' "$OUT" ||
  { show_output; fail "snapctl run through a symlink in $T/bin does not find dd"; }
note "build-tree snapctl finds dd by itself (also through a symlink)"

mkdir -m 0755 "$T/empty"
VMSNAP_PLUGIN_PATH=$T/empty run "$bt_snapctl" --json plugins
listed - "VMSNAP_PLUGIN_PATH=an empty dir (it replaces the binary's plugin dir)"
VMSNAP_PLUGIN_PATH=$T/empty run "$bt_snapctl" --json --plugin-dir "$PLUGIN_BUILD_DIR" plugins
python3 -c 'import json,sys; print(" ".join(p["name"] for p in json.load(open(sys.argv[1]))))' "$OUT" | grep -qw dd ||
  { show_output; fail "--plugin-dir does not win over VMSNAP_PLUGIN_PATH"; }
note "--plugin-dir > VMSNAP_PLUGIN_PATH > the binary's plugin dir"

# ---- unsafe plugin dirs and files ------------------------------------------------------
backends=$(cd "$PLUGIN_BUILD_DIR" && for f in *.so; do echo "${f%.so}"; done | sort | tr '\n' ' ')
backends=${backends% }
for m in 0777 0775; do
  pd=$T/plugins-$m
  cp -a "$PLUGIN_BUILD_DIR" "$pd"
  chmod "$m" "$pd"
  sc --plugin-dir "$pd" --json plugins
  [ "$RC" = 0 ] || { show_output; fail "plugins with an unsafe dir exited $RC"; }
  listed - "a plugin dir with mode $m"
  err_has "warning: .*$pd" "the warning names the unsafe dir $pd (mode $m)"
done
note "plugin dirs writable by others or the group: refused with a warning naming them"

pd=$T/plugins
cp -a "$PLUGIN_BUILD_DIR" "$pd"
chmod 0755 "$pd"
chmod 0755 "$pd"/*.so
sc --plugin-dir "$pd" --json plugins
listed "$backends" "a safe copy of the plugin dir"
[ ! -s "$ERR" ] || { show_output; fail "a safe plugin dir gives warnings"; }

# A plugin file writable by others: skipped, named; the others load.
cp "$pd/dd.so" "$pd/zz-open.so"
chmod 0666 "$pd/zz-open.so"
# Owned by somebody else.
cp "$pd/dd.so" "$pd/zz-nobody.so"
chown 65534:65534 "$pd/zz-nobody.so"
# Garbage, and a real ELF library that is no plugin.
head -c 65536 /dev/urandom >"$pd/garbage.so"
libc=$(ldd "$bt_snapctl" | awk '/libc\.so/ {print $3}')
[ -f "$libc" ] || fail "cannot find the libc snapctl uses"
cp "$libc" "$pd/x.so"
chmod 0644 "$pd/garbage.so" "$pd/x.so"
# Not a .so: ignored without a word.
echo "not a plugin" >"$pd/README"
sc --plugin-dir "$pd" --json plugins
[ "$RC" = 0 ] || { show_output; fail "plugins with bad plugin files exited $RC"; }
listed "$backends" "bad plugin files next to good ones"
python3 -m json.tool "$OUT" >/dev/null || fail "plugins --json (with warnings) is not JSON"
for f in zz-open.so zz-nobody.so garbage.so x.so; do
  err_has "warning: .*$pd/$f" "the warning names $f"
done
grep -q README "$ERR" && { show_output; fail "a file not ending in .so was looked at"; }
grep -q "warning" "$OUT" && fail "warnings went to stdout"
note "plugin files mode 0666, foreign-owned, garbage and not-a-plugin: skipped, named; the others load"

# The same backend on the path twice: loaded once, the second named.
sc --plugin-dir "$PLUGIN_BUILD_DIR:$T/plugins-0777:$T/plugins-copy-ok" --json plugins
listed "$backends" "a path with a bad dir and a missing dir"
mkdir -m 0755 "$T/plugins2"
cp "$PLUGIN_BUILD_DIR/dd.so" "$T/plugins2/dd.so"
chmod 0755 "$T/plugins2/dd.so"
sc --plugin-dir "$PLUGIN_BUILD_DIR:$T/plugins2" --json plugins
listed "$backends" "dd found in two dirs of the path"
err_has "$T/plugins2/dd.so" "the warning names the second dd.so"
note "a backend found twice loads once"

# ---- --json output ----------------------------------------------------------------------
disk=$T/vm.img
make_sparse "$disk" 16 25
desc=$'line one\nline "two"\twith a tab, a \\ backslash, an \x1b[31mescape\x1b[0m and a C1 \xc2\x9b control'
ok "create --json" --json create dom --disk "vda=$disk" --name "snap ünïcode" --description "$desc"
python3 -m json.tool "$OUT" >/dev/null || { show_output; fail "create --json is not JSON"; }
python3 - "$OUT" "$desc" <<'EOF' || { show_output; fail "create --json does not give back the name and description"; }
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["name"] == "snap ünïcode", doc["name"]
assert doc["description"] == sys.argv[2], doc["description"]
EOF
# --progress json: one JSON object per line on stderr, done never past total.
RC=0
"$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" --progress json create dom --name s2 \
  >"$OUT" 2>"$ERR" || RC=$?
[ "$RC" = 0 ] || { show_output; fail "create --progress json exited $RC"; }
python3 - "$ERR" <<'EOF' || { show_output; fail "--progress json: stderr lines are not progress JSON objects"; }
import json, sys
lines = [l for l in open(sys.argv[1], encoding="utf-8", errors="replace") if l.strip()]
objs = [json.loads(l) for l in lines]
assert objs, "no progress lines"
for o in objs:
    assert set(o) >= {"phase", "disk", "done", "total"}, o
    assert o["total"] == 0 or 0 <= o["done"] <= o["total"], o
creates = [o for o in objs if o["phase"] == "create" and o["total"]]
assert creates and creates[-1]["done"] == creates[-1]["total"], creates[-3:]
EOF
for cmd in "plugins" "list dom" "list dom --tree" "list dom --leaves" "info dom s2"; do
  # shellcheck disable=SC2086 # cmd is a list of words
  ok "--json $cmd" --json $cmd
  python3 -m json.tool "$OUT" >/dev/null || { show_output; fail "snapctl --json $cmd is not JSON"; }
done
ok "info --json of the snapshot with the odd description" --json info dom "snap ünïcode"
python3 - "$OUT" "$desc" <<'EOF' || { show_output; fail "info --json does not round-trip the description"; }
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["description"] == sys.argv[2]
assert doc["name"] == "snap ünïcode"
assert [d["target"] for d in doc["disks"]] == ["vda"]
EOF
ok "revert --json" --json revert dom "snap ünïcode"
python3 -m json.tool "$OUT" >/dev/null || { show_output; fail "revert --json is not JSON"; }
ok "list --json of an emptied domain" --json list dom
for n in s2 "snap ünïcode"; do ok "delete $n" delete dom "$n"; done
ok "list --json of an emptied domain" --json list dom
assert_eq "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])))' "$OUT")" "[]" "list --json of a domain without snapshots"
note "--json of plugins, list, info, create and revert, and --progress json, are JSON; descriptions round-trip"

# Text output passes no control character to the terminal.
ok "create with the odd description" create dom --name s3 --description "$desc"
for cmd in "list dom" "list dom --tree" "info dom s3"; do
  # shellcheck disable=SC2086
  ok "$cmd" $cmd
  if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]\|\xc2[\x80-\x9f]' "$OUT"; then
    od -c "$OUT" | head -20
    fail "snapctl $cmd prints control characters from a description"
  fi
done
ok "delete s3" delete dom s3
note "text output sanitises control characters"

# ---- file modes (umask 000) --------------------------------------------------------------
ST=$T/state-modes
umask 000
mkdir -m 0755 "$T/m"
make_sparse "$T/m/d.img" 8 50
ok "create under umask 000" create mdom --disk "vda=$T/m/d.img" --name s1
umask 022
for d in "$ST" "$ST/domains" "$ST/domains/mdom" "$ST/domains/mdom/snapshots"; do
  assert_eq "$(mode_of "$d")" 700 "mode of the state dir $d"
done
for f in "$ST/domains/mdom/domain.json" "$ST/domains/mdom/lock" "$ST/domains/mdom/journal" \
  "$ST/domains/mdom/snapshots/"*.json; do
  assert_eq "$(mode_of "$f")" 600 "mode of $f"
done
[ "$(find "$ST/domains/mdom/snapshots" -name '*.json' | wc -l)" = 1 ] || fail "expected one snapshot document"
assert_eq "$(mode_of "$(dd_file "$T/m/d.img" s1)")" 600 "mode of the dd snapshot file"
assert_eq "$(mode_of "$(dd_dir "$T/m/d.img")")" 700 "mode of the dd snapshot dir"
assert_eq "$(mode_of "$T/m/.vmsnap")" 700 "mode of the .vmsnap dir"
# A journal left by a crash has the same mode, also when it is made
# under umask 000 (removed while cleared, the next op makes it anew).
assert_no_journal mdom "after create"
rm "$ST/domains/mdom/journal"
umask 000
RC=0
VMSNAP_CRASHPOINT=create:journaled "$SNAPCTL" --state-dir "$ST" --plugin-dir "$PLUGIN_BUILD_DIR" \
  --progress none create mdom --name s2 >"$OUT" 2>"$ERR" || RC=$?
umask 022
assert_eq "$RC" 137 "create killed at create:journaled"
assert_eq "$(mode_of "$ST/domains/mdom/journal")" 600 "mode of the journal"
ok "recover" recover mdom
# The revert's staging copy takes the disk's own mode, not one from the umask.
disk_mode=$(mode_of "$T/m/d.img")
ok "revert under umask 000" revert mdom s1
assert_eq "$(mode_of "$T/m/d.img")" "$disk_mode" "the disk's mode after revert"
note "modes: state dirs 0700, state files 0600, dd files 0600 and dirs 0700, under umask 000"

it_done
