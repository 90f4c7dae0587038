/* util.c — small helpers: time, strings, the crash-point test hook. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

char *xstrdup(const char *s)
{
  return s ? strdup(s) : NULL;
}

char *xasprintf(const char *fmt, ...)
{
  char *s = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0)
    s = NULL;
  va_end(ap);
  return s;
}

const char *jstr(const json_t *obj, const char *key)
{
  const char *s = json_string_value(json_object_get(obj, key));
  return s;
}

void crashpoint(const char *name)
{
  const char *want = getenv("VMSNAP_CRASHPOINT");
  if (want && strcmp(want, name) == 0) {
    fprintf(stderr, "vmsnap: crashpoint %s reached: killing myself\n", name);
    kill(getpid(), SIGKILL);
  }
}
