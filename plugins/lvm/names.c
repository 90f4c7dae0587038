/* names.c — LV names: what LVM accepts, the names vmsnap gives snapshot
 * and helper LVs, device-mapper names. Pure functions (unit tested). */
#include "lvm.h"

#include <stdio.h>
#include <string.h>

/* lvm2's lib/misc/lvm-string.c refuses these inside an LV name. */
static const char *const reserved_infix[] = {
  "_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_imeta", "_iorig", "_mimage", "_mlog",
  "_pmspare", "_rimage", "_rmeta", "_tdata", "_tmeta", "_vdata", "_vorigin", "_wcorig",
  "_vdo", NULL,
};

static int name_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '_' || c == '.' || c == '-';
}

static const char *reserved_in(const char *s)
{
  for (size_t i = 0; reserved_infix[i]; i++)
    if (strstr(s, reserved_infix[i])) return reserved_infix[i];
  return NULL;
}

int lv_name_valid(const char *s, const char **why)
{
  const char *dummy;
  if (!why) why = &dummy;
  if (!s || !*s) return *why = "it is empty", 0;
  if (strlen(s) > LV_NAME_MAX) return *why = "it is longer than 127 characters", 0;
  if (s[0] == '-') return *why = "it starts with '-'", 0;
  if (!strcmp(s, ".") || !strcmp(s, "..")) return *why = "'.' and '..' are not names", 0;
  for (const char *p = s; *p; p++)
    if (!name_char(*p)) return *why = "it has a character outside [A-Za-z0-9+_.-]", 0;
  if (!strncmp(s, "snapshot", 8) || !strncmp(s, "pvmove", 6))
    return *why = "names starting with \"snapshot\" or \"pvmove\" are reserved by LVM", 0;
  if (reserved_in(s)) return *why = "it contains a suffix LVM reserves for its own volumes", 0;
  return 1;
}

/* FNV-1a: short, stable, good enough to keep shortened names apart. */
static uint32_t hash32(const char *s)
{
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

int lv_dm_name(const char *vg, const char *lv, const char *suffix, char *out, size_t len)
{
  size_t o = 0;
  const char *parts[2] = {vg, lv};
  for (int k = 0; k < 2; k++) {
    if (k && o + 1 < len) out[o++] = '-';
    for (const char *p = parts[k]; *p; p++) {
      if (o + 2 >= len) return -1;
      out[o++] = *p;
      if (*p == '-') out[o++] = '-';
    }
  }
  if (o >= len) return -1;
  out[o] = '\0';
  if (suffix && strlen(out) + strlen(suffix) >= len) return -1;
  if (suffix) strcat(out, suffix);
  return 0;
}

/* Would VG/name fit every LVM and device-mapper limit? */
static int fits(const char *vg, const char *name)
{
  char dm[512];
  if (strlen(vg) + 1 + strlen(name) > LV_FULL_MAX) return 0;
  if (lv_dm_name(vg, name, "-cow", dm, sizeof dm) < 0) return 0;
  return strlen(dm) <= LV_DM_NAME_MAX;
}

/* Appends s to out at *o, writing '_' as "+5F" where it starts a reserved
 * infix. */
static void put_escaped(char *out, size_t len, size_t *o, const char *s)
{
  for (const char *p = s; *p && *o + 4 < len; p++) {
    int esc = 0;
    for (size_t i = 0; *p == '_' && reserved_infix[i]; i++)
      if (!strncmp(p, reserved_infix[i], strlen(reserved_infix[i]))) esc = 1;
    if (esc) {
      memcpy(out + *o, "+5F", 3);
      *o += 3;
    } else {
      out[(*o)++] = *p;
    }
  }
  out[*o] = '\0';
}

int lv_snapshot_name(const char *vg, const char *origin, const char *object_name, char *out,
                     size_t len)
{
  char full[1024];
  size_t o = 0;
  if (len < 2 || snprintf(full, sizeof full, "%s-", origin) >= (int)sizeof full) return -1;
  o = strlen(full);
  put_escaped(full, sizeof full, &o, object_name);
  if (fits(vg, full) && strlen(full) < len) {
    snprintf(out, len, "%s", full);
    return 0;
  }
  /* Shorten: keep a prefix and append "+H" and a hash of the whole name,
   * cutting never inside a "+HH" escape. */
  char tail[16];
  snprintf(tail, sizeof tail, "+H%08x", hash32(full));
  size_t keep = strlen(full);
  char cand[1024];
  size_t min = strlen(origin) + 1 + strlen("vmsnap-");
  while (keep > min) {
    keep--;
    size_t k = keep;
    if (k >= 1 && full[k - 1] == '+') k -= 1;
    else if (k >= 2 && full[k - 2] == '+') k -= 2;
    snprintf(cand, sizeof cand, "%.*s%s", (int)k, full, tail);
    if (fits(vg, cand) && strlen(cand) < len) {
      snprintf(out, len, "%s", cand);
      return 0;
    }
  }
  return -1;
}

int lv_helper_name(const char *vg, const char *origin, const char *what, const char *key,
                   char *out, size_t len)
{
  char cand[512];
  if (snprintf(cand, sizeof cand, "%s-vmsnap-%s-%08x", origin, what, hash32(key)) >=
      (int)sizeof cand)
    return -1;
  if (!fits(vg, cand) || strlen(cand) >= len) return -1;
  snprintf(out, len, "%s", cand);
  return 0;
}

int lv_dm_split(const char *dm, char *vg, size_t vglen, char *lv, size_t lvlen)
{
  char *outs[2] = {vg, lv};
  size_t lens[2] = {vglen, lvlen}, o = 0;
  int part = 0;
  for (const char *p = dm; *p; p++) {
    if (*p == '-' && p[1] == '-') {
      p++;
    } else if (*p == '-') {
      if (part == 1) return -1; /* a layer ("-real", "-cow", "-tpool") */
      outs[0][o] = '\0';
      part = 1;
      o = 0;
      continue;
    }
    if (o + 1 >= lens[part]) return -1;
    outs[part][o++] = *p;
  }
  if (part != 1 || o == 0 || !vg[0]) return -1;
  lv[o] = '\0';
  return 0;
}

int lv_decode_snapshot_name(const char *origin, const char *lvname, char *out, size_t len)
{
  size_t olen = strlen(origin), o = 0;
  static const char mark[] = "-vmsnap-";
  if (strncmp(lvname, origin, olen) != 0 || strncmp(lvname + olen, mark, sizeof mark - 1) != 0)
    return -1;
  const char *p = lvname + olen + sizeof mark - 1;
  if (!*p) return -1;
  for (; *p; p++) {
    unsigned v;
    if (o + 1 >= len) return -1;
    if (*p != '+') {
      out[o++] = *p;
    } else if (p[1] && p[2] && p[1] != 'H' && sscanf(p + 1, "%2x", &v) == 1 && v != 0) {
      out[o++] = (char)v;
      p += 2;
    } else {
      return -1; /* "+H…": shortened, the name is lost */
    }
  }
  out[o] = '\0';
  return 0;
}

void lv_uuid_strip(const char *uuid, char *out, size_t len)
{
  size_t o = 0;
  for (const char *p = uuid; *p && o + 1 < len; p++)
    if (*p != '-') out[o++] = *p;
  if (len) out[o] = '\0';
}

int lv_uuid_format(const char *bare, char *out, size_t len)
{
  static const int groups[] = {6, 4, 4, 4, 4, 4, 6};
  size_t o = 0;
  if (strlen(bare) != 32 || len < LV_UUID_LEN + 1) return -1;
  for (size_t g = 0; g < 7; g++) {
    if (g) out[o++] = '-';
    memcpy(out + o, bare, (size_t)groups[g]);
    o += (size_t)groups[g];
    bare += groups[g];
  }
  out[o] = '\0';
  return 0;
}
