/* names.c — validation of user-given names and derived object names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#include "names.h"

/* Length of the UTF-8 sequence at s, or 0 if it is not valid UTF-8. */
static size_t utf8_seq_len(const unsigned char *s)
{
  size_t n;
  if (s[0] < 0x80) return 1;
  if ((s[0] & 0xe0) == 0xc0) n = 2;
  else if ((s[0] & 0xf0) == 0xe0) n = 3;
  else if ((s[0] & 0xf8) == 0xf0) n = 4;
  else return 0;
  for (size_t i = 1; i < n; i++)
    if ((s[i] & 0xc0) != 0x80) return 0;
  if (n == 2 && s[0] < 0xc2) return 0; /* overlong */
  return n;
}

int name_validate(const char *name, const char *what, vs_err *err)
{
  if (!name || !*name)
    return err_set(err, VMSNAP_E_INVALID, "%s is empty: give a name", what);
  size_t len = strlen(name);
  if (len > NAME_MAX_BYTES)
    return err_set(err, VMSNAP_E_INVALID,
                   "%s is %zu bytes long; at most %d bytes are allowed", what, len,
                   NAME_MAX_BYTES);
  if (strchr(name, '/'))
    return err_set(err, VMSNAP_E_INVALID,
                   "%s '%s' contains '/': names are used in paths and may not", what, name);
  if (strstr(name, ".."))
    return err_set(err, VMSNAP_E_INVALID,
                   "%s '%s' contains '..': names are used in paths and may not", what, name);
  if (name[0] == '.' || name[0] == '-')
    return err_set(err, VMSNAP_E_INVALID,
                   "%s '%s' starts with '%c': start it with a letter or digit", what, name,
                   name[0]);
  for (const unsigned char *p = (const unsigned char *)name; *p;) {
    if (*p < 0x20 || *p == 0x7f)
      return err_set(err, VMSNAP_E_INVALID,
                     "%s contains a control character (byte 0x%02x at offset %zu)", what, *p,
                     (size_t)(p - (const unsigned char *)name));
    size_t n = utf8_seq_len(p);
    if (!n)
      return err_set(err, VMSNAP_E_INVALID, "%s is not valid UTF-8 (at byte offset %zu)",
                     what, (size_t)(p - (const unsigned char *)name));
    p += n;
  }
  return 0;
}

static int object_char_ok(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == '-';
}

/* FNV-1a: a short, stable tag that keeps cut names distinct. */
static uint32_t fnv1a(const char *s)
{
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

char *name_object(const char *name)
{
  size_t cap = 8 + strlen(name) * 3 + 1;
  char *out = malloc(cap);
  if (!out) return NULL;
  size_t n = (size_t)snprintf(out, cap, "vmsnap-");
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    if (object_char_ok(*p))
      out[n++] = (char)*p;
    else
      n += (size_t)snprintf(out + n, cap - n, "+%02X", *p);
  }
  out[n] = '\0';
  if (n > OBJECT_NAME_MAX) {
    /* Cut on an escape boundary, then "+H" + 8 hex digits of the name. */
    size_t keep = OBJECT_NAME_MAX - 10;
    while (keep > 0 && (out[keep - 1] == '+' || (keep > 1 && out[keep - 2] == '+')))
      keep--;
    snprintf(out + keep, cap - keep, "+H%08x", fnv1a(name));
  }
  return out;
}

char *name_default(json_t *taken)
{
  char base[32], *cand;
  snprintf(base, sizeof base, "%lld", (long long)time(NULL));
  cand = xstrdup(base);
  for (int i = 2; cand; i++) {
    int clash = 0;
    size_t k;
    json_t *doc;
    json_array_foreach(taken, k, doc)
      if (strcmp(jstr(doc, "name") ? jstr(doc, "name") : "", cand) == 0) clash = 1;
    if (!clash) return cand;
    free(cand);
    cand = xasprintf("%s-%d", base, i);
  }
  return NULL;
}

void uuid_new(char out[37])
{
  uuid_t u;
  uuid_generate_random(u);
  uuid_unparse_lower(u, out);
}
