/* lvs.c — reading LVM's own report: `lvm lvs --reportformat json` with
 * sizes in bytes, parsed with jansson. The parser is pure (unit tested);
 * running lvm is in lvm.c. */
#include "lvm.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char LV_FIELDS[] = "vg_name,lv_name,lv_uuid,lv_attr,segtype,origin,pool_lv,lv_tags,"
                         "lv_size,snap_percent,data_percent,lv_time,vg_free,vg_extent_size";

static void copy_str(json_t *o, const char *key, char *out, size_t len)
{
  const char *s = json_string_value(json_object_get(o, key));
  snprintf(out, len, "%s", s ? s : "");
}

static uint64_t num_u64(json_t *o, const char *key)
{
  const char *s = json_string_value(json_object_get(o, key));
  return s && *s ? strtoull(s, NULL, 10) : 0;
}

static double num_pct(json_t *o, const char *key)
{
  const char *s = json_string_value(json_object_get(o, key));
  char *end;
  if (!s || !*s) return -1;
  double v = strtod(s, &end);
  return end == s ? -1 : v;
}

/* lv_time as `--config report/time_format="%s"` prints it: epoch seconds. */
static int64_t num_time(json_t *o)
{
  const char *s = json_string_value(json_object_get(o, "lv_time"));
  char *end;
  if (!s || !*s) return 0;
  long long v = strtoll(s, &end, 10);
  return *end ? 0 : (int64_t)v;
}

int lv_report_parse(const char *text, lv_report *out, const char **why)
{
  json_t *root = json_loads(text ? text : "", 0, NULL);
  json_t *rep, *lvs;
  size_t i, k;
  memset(out, 0, sizeof *out);
  if (!root) return *why = "lvs printed no JSON", -1;
  rep = json_object_get(root, "report");
  if (!json_is_array(rep)) {
    json_decref(root);
    return *why = "lvs printed JSON without a \"report\" array", -1;
  }
  size_t total = 0;
  json_array_foreach(rep, i, lvs) total += json_array_size(json_object_get(lvs, "lv"));
  out->lv = calloc(total ? total : 1, sizeof *out->lv);
  if (!out->lv) {
    json_decref(root);
    return *why = "out of memory", -1;
  }
  json_array_foreach(rep, i, lvs) {
    json_t *lv;
    json_array_foreach(json_object_get(lvs, "lv"), k, lv) {
      lv_info *l = &out->lv[out->n++];
      copy_str(lv, "vg_name", l->vg, sizeof l->vg);
      copy_str(lv, "lv_name", l->name, sizeof l->name);
      copy_str(lv, "lv_uuid", l->uuid, sizeof l->uuid);
      copy_str(lv, "lv_attr", l->attr, sizeof l->attr);
      copy_str(lv, "segtype", l->segtype, sizeof l->segtype);
      copy_str(lv, "origin", l->origin, sizeof l->origin);
      copy_str(lv, "pool_lv", l->pool, sizeof l->pool);
      copy_str(lv, "lv_tags", l->tags, sizeof l->tags);
      l->size = num_u64(lv, "lv_size");
      l->snap_percent = num_pct(lv, "snap_percent");
      l->data_percent = num_pct(lv, "data_percent");
      l->ctime = num_time(lv);
      l->vg_free = num_u64(lv, "vg_free");
      l->extent_size = num_u64(lv, "vg_extent_size");
      /* Hidden LVs are shown as [name]: drop the brackets. */
      size_t nl = strlen(l->name);
      if (nl > 2 && l->name[0] == '[' && l->name[nl - 1] == ']') {
        memmove(l->name, l->name + 1, nl - 2);
        l->name[nl - 2] = '\0';
      }
    }
  }
  json_decref(root);
  return 0;
}

void lv_report_free(lv_report *r)
{
  free(r->lv);
  r->lv = NULL;
  r->n = 0;
}

const lv_info *lv_find_name(const lv_report *r, const char *name)
{
  for (size_t i = 0; name && i < r->n; i++)
    if (!strcmp(r->lv[i].name, name)) return &r->lv[i];
  return NULL;
}

const lv_info *lv_find_uuid(const lv_report *r, const char *uuid)
{
  for (size_t i = 0; uuid && *uuid && i < r->n; i++)
    if (!strcmp(r->lv[i].uuid, uuid)) return &r->lv[i];
  return NULL;
}

int lv_has_tag(const lv_info *lv, const char *tag)
{
  size_t n = strlen(tag);
  for (const char *p = lv->tags; *p;) {
    size_t k = strcspn(p, ",");
    if (k == n && !strncmp(p, tag, n)) return 1;
    p += k;
    if (*p == ',') p++;
  }
  return 0;
}

/* lv_attr: [0] volume type, [4] state, [5] open, [9] skip activation. */
static char attr(const lv_info *lv, size_t i)
{
  return strlen(lv->attr) > i ? lv->attr[i] : '\0';
}

int lv_is_thin(const lv_info *lv) { return attr(lv, 0) == 'V' || !strcmp(lv->segtype, "thin"); }
int lv_is_classic_snapshot(const lv_info *lv) { return attr(lv, 0) == 's' || attr(lv, 0) == 'S'; }
int lv_is_merging(const lv_info *lv) { return attr(lv, 0) == 'S' || attr(lv, 0) == 'O'; }
int lv_is_invalid(const lv_info *lv)
{
  char s = attr(lv, 4);
  return s == 'I' || s == 'S' || s == 'm' || s == 'M' ||
         (lv_is_classic_snapshot(lv) && lv->snap_percent >= 100.0);
}
int lv_is_active(const lv_info *lv) { return attr(lv, 4) == 'a'; }
int lv_skips_activation(const lv_info *lv) { return attr(lv, 9) == 'k'; }
