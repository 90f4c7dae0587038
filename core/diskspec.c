/* diskspec.c — TARGET=SOURCE[,key=value]… as snapctl's --disk takes it.
 * A literal comma in a path is written ",," (as in QEMU's -drive). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static char *fail(char **errmsg, const char *text, const char *why)
{
  if (errmsg) *errmsg = xasprintf("bad disk '%s': %s (expected TARGET=SOURCE[,format=raw|qcow2]"
                                  "[,backend=B][,mode=internal|external][,file=F][,KEY=VALUE "
                                  "(the backend's options)])", text, why);
  return NULL;
}

/* Cuts the next field at an unescaped comma, unescaping ",," in place. */
static char *next_field(char **cursor)
{
  char *start = *cursor, *w = start, *r = start;
  if (!start) return NULL;
  for (;; r++) {
    if (*r == ',' && r[1] == ',') { *w++ = ','; r++; continue; }
    if (*r == ',' || *r == '\0') {
      *cursor = *r ? r + 1 : NULL;
      *w = '\0';
      return start;
    }
    *w++ = *r;
  }
}

int vmsnap_disk_spec_parse(const char *text, vmsnap_disk_spec *spec, char **bufp, char **errmsg)
{
  if (errmsg) *errmsg = NULL;
  *bufp = NULL;
  memset(spec, 0, sizeof *spec);
  /* The fields are cut in place; the backend options are written again,
   * escaped, after them in the same buffer. */
  size_t tlen = strlen(text ? text : "");
  char *buf = malloc(3 * tlen + 2);
  if (!buf) return VMSNAP_E_NOMEM;
  memcpy(buf, text ? text : "", tlen + 1);
  char *opts = buf + tlen + 1, *ow = opts;
  char *cur = buf, *first = next_field(&cur), *eq = first ? strchr(first, '=') : NULL;
  if (!eq || eq == first || !eq[1]) {
    fail(errmsg, text ? text : "", "it needs TARGET=SOURCE first");
    free(buf);
    return VMSNAP_E_INVALID;
  }
  *eq = '\0';
  spec->target = first;
  spec->source = eq + 1;
  for (char *f; (f = next_field(&cur));) {
    char *v = strchr(f, '=');
    if (!v) { fail(errmsg, text, "an option without '='"); goto bad; }
    *v++ = '\0';
    const char **slot = !strcmp(f, "format") ? &spec->format
                      : !strcmp(f, "backend") ? &spec->backend
                      : !strcmp(f, "mode") ? &spec->mode
                      : !strcmp(f, "file") ? &spec->file : NULL;
    if (!slot) {
      /* Another key is the backend's: checked once the backend is known. */
      if (!*f || strspn(f, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(f) ||
          strlen(f) > 32) {
        char why[128];
        snprintf(why, sizeof why, "bad option name '%.60s' (options are [a-z0-9_-]+)", f);
        fail(errmsg, text, why);
        goto bad;
      }
      if (!*v) { fail(errmsg, text, "an option with an empty value"); goto bad; }
      if (ow != opts) *ow++ = ',';
      for (const char *k = f; *k; k++) *ow++ = *k;
      *ow++ = '=';
      for (const char *k = v; *k; k++) {
        if (*k == ',') *ow++ = ',';
        *ow++ = *k;
      }
      *ow = '\0';
      spec->options = opts;
      continue;
    }
    if (*slot) { fail(errmsg, text, "an option given twice"); goto bad; }
    *slot = v;
  }
  if (spec->format && strcmp(spec->format, "raw") && strcmp(spec->format, "qcow2")) {
    fail(errmsg, text, "format must be raw or qcow2");
    goto bad;
  }
  if (spec->mode && strcmp(spec->mode, "internal") && strcmp(spec->mode, "external")) {
    fail(errmsg, text, "mode must be internal or external");
    goto bad;
  }
  *bufp = buf;
  return 0;
bad:
  free(buf);
  memset(spec, 0, sizeof *spec);
  return VMSNAP_E_INVALID;
}
