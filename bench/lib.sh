# bench/lib.sh — what the benchmarks share: finding (or building) the
# snapctl to measure, and the arithmetic on microsecond timings.
# Sourced by bench-*.sh after they set root, work, snapctl and define log/die.

# bench_snapctl: sets snapctl to an absolute executable; when none was
# given, the build tree's (built with scripts/build.sh when missing, else a
# private build in $work without -Werror).
bench_snapctl() {
  if [ -z "$snapctl" ]; then
    snapctl=$root/build/bin/snapctl
    if [ ! -x "$snapctl" ]; then
      log "$snapctl missing: building with scripts/build.sh"
      if ! "$root/scripts/build.sh" >"$work/build.log" 2>&1; then
        tail -5 "$work/build.log" >&2
        log "scripts/build.sh failed; building a private copy in $work/build without -Werror"
        cmake -S "$root" -B "$work/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
          -DVMSNAP_BUILD_TESTS=OFF -DVMSNAP_MAN=OFF -DCMAKE_C_FLAGS=-Wno-error \
          >"$work/build.log" 2>&1 &&
          cmake --build "$work/build" -j"$(nproc)" >>"$work/build.log" 2>&1 ||
          { tail -20 "$work/build.log" >&2; die "cannot build snapctl; pass --snapctl PATH"; }
        snapctl=$work/build/bin/snapctl
      fi
    fi
  fi
  [ -x "$snapctl" ] || die "snapctl $snapctl is not executable"
  snapctl=$(realpath "$snapctl")
}

# Median of microsecond values (mean of the two middle ones for even N).
median() {
  printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {
    if (NR == 0) { print ""; exit }
    if (NR % 2) print v[(NR+1)/2]; else printf "%d\n", (v[NR/2] + v[NR/2+1]) / 2 }'
}
minimum() { printf '%s\n' "$@" | sort -n | head -1; }
msec() { [ -n "${1:-}" ] && awk -v u="$1" 'BEGIN { printf "%.1f", u / 1e3 }' || printf -- '-'; }
ratio() { # a / b, both microseconds
  [ -n "${1:-}" ] && [ -n "${2:-}" ] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else printf "-" }' || printf -- '-'
}
