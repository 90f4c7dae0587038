/* size.c — how big a classic snapshot's COW volume is.
 *
 * A classic snapshot must hold a copy of every chunk of the origin written
 * after it was taken; when that space runs out LVM marks it invalid and
 * its data is lost. The default policy: 20% of the origin, at least
 * 64 MiB, never more than the origin plus 1% (a snapshot that large can
 * never overflow: its exception table fits in that margin). A disk's
 * size= option overrides it: "N%" of the origin or a size with lvcreate's
 * binary units. Pure (unit tested). */
#include "lvm.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t round_up(uint64_t v, uint64_t unit)
{
  if (unit == 0) return v;
  return (v + unit - 1) / unit * unit;
}

static int parse_units(const char *spec, uint64_t *out, const char **why)
{
  char *end;
  errno = 0;
  double v = strtod(spec, &end);
  if (end == spec || errno || v <= 0 || !isdigit((unsigned char)spec[0]))
    return *why = "size= must be a positive number with an optional unit (e.g. 2G, 512M) or a "
                  "percentage of the origin (e.g. 25%)", -1;
  uint64_t mult = 1u << 20; /* lvcreate -L: MiB when no unit */
  if (*end) {
    switch (tolower((unsigned char)*end)) {
    case 'b': mult = 1; break;
    case 's': mult = 512; break;
    case 'k': mult = 1ull << 10; break;
    case 'm': mult = 1ull << 20; break;
    case 'g': mult = 1ull << 30; break;
    case 't': mult = 1ull << 40; break;
    default:
      return *why = "size= has an unknown unit (use b, s, k, m, g or t: binary units)", -1;
    }
    if (end[1] && !(tolower((unsigned char)end[1]) == 'i' && tolower((unsigned char)end[2]) == 'b' &&
                    !end[3]) &&
        !(tolower((unsigned char)end[1]) == 'b' && !end[2]))
      return *why = "size= has trailing characters after its unit", -1;
  }
  double bytes = v * (double)mult;
  if (bytes > 9.0e18) return *why = "size= is too large", -1;
  *out = (uint64_t)bytes;
  return 0;
}

int lv_snapshot_size(const char *spec, uint64_t origin_bytes, uint64_t extent_bytes,
                     uint64_t *out, const char **why)
{
  const char *dummy;
  uint64_t want, cap = origin_bytes + origin_bytes / 100 + extent_bytes;
  if (!why) why = &dummy;
  if (!spec) {
    want = origin_bytes / 100 * LV_DEFAULT_PERCENT;
    if (want < LV_MIN_SNAP_BYTES) want = LV_MIN_SNAP_BYTES;
  } else if (spec[0] && spec[strlen(spec) - 1] == '%') {
    char *end;
    errno = 0;
    double pct = strtod(spec, &end);
    if (end != spec + strlen(spec) - 1 || errno || !(pct > 0) || pct > 100 ||
        !isdigit((unsigned char)spec[0]))
      return *why = "size= as a percentage must be more than 0% and at most 100% of the origin",
             -1;
    want = (uint64_t)((double)origin_bytes * pct / 100.0);
    if (want == 0) want = 1;
  } else {
    if (parse_units(spec, &want, why) < 0) return -1;
  }
  if (want > cap) want = cap;
  want = round_up(want, extent_bytes);
  if (want == 0) return *why = "the snapshot size rounds to nothing", -1;
  *out = want;
  return 0;
}
