/* size.c — sizes for people, in the messages of every backend. */
#include "plugin_util.h"

#include <stdio.h>

void vp_human_size(uint64_t bytes, char *buf, size_t len)
{
  static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = (double)bytes;
  size_t u = 0;

  while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
    v /= 1024;
    u++;
  }
  if (u == 0)
    snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
  else
    snprintf(buf, len, "%.1f %s", v, units[u]);
}
