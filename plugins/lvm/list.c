/* list.c — the snapshot LVs of a disk's LV found in its volume group:
 * every classic or thin snapshot whose origin it is (vmsnap's and other
 * tools'), and vmsnap's thin snapshots whose origin a thin revert
 * replaced. Each with how full it is. */
#include "lvm.h"

#include <stdio.h>
#include <string.h>

#include "plugin_util.h"

void lv_fill_note(const lv_info *lv, char *buf, size_t len)
{
  char sz[32];
  vp_human_size(lv->size, sz, sizeof sz);
  if (lv_is_classic_snapshot(lv)) {
    if (lv_is_invalid(lv))
      snprintf(buf, len, "INVALID: the classic snapshot overflowed its %s of COW space; its data "
               "is lost", sz);
    else if (lv->attr[0] == 'S')
      snprintf(buf, len, "merging into %s (waits for its next activation, or runs now)",
               lv->origin);
    else if (lv->snap_percent >= 0)
      snprintf(buf, len, "classic snapshot, fill %.2f%% of %s COW space", lv->snap_percent, sz);
    else
      snprintf(buf, len, "classic snapshot of %s COW space (inactive: fill unknown)", sz);
  } else if (lv->data_percent >= 0) {
    snprintf(buf, len, "thin snapshot, fill %.2f%% of %s", lv->data_percent, sz);
  } else {
    snprintf(buf, len, "thin snapshot of %s (inactive%s: fill unknown)", sz,
             lv_skips_activation(lv) ? ", skips activation" : "");
  }
}

static uint64_t used_bytes(const lv_info *lv)
{
  double p = lv_is_classic_snapshot(lv) ? lv->snap_percent : lv->data_percent;
  return p > 0 ? (uint64_t)((double)lv->size * p / 100.0) : 0;
}

static int is_candidate(const lv_info *lv, const char *origin)
{
  char prefix[300];
  if (!strncmp(lv->tags, LV_TAG "-revert-", 14) || strstr(lv->tags, "," LV_TAG "-revert-"))
    return 0; /* a revert's staging LV */
  if (!strcmp(lv->origin, origin)) return 1;
  snprintf(prefix, sizeof prefix, "%s-vmsnap-", origin);
  return lv_has_tag(lv, LV_TAG) && !strncmp(lv->name, prefix, strlen(prefix)) &&
         (lv_is_thin(lv) || lv_is_classic_snapshot(lv));
}

int lv_list(vmsnap_job *job, const vmsnap_job_info *info)
{
  lv_job j = {job, info->host, info, info->disk->target};
  lv_origin o;
  lv_report r = {0};
  char obj[300], name[256], note[256];
  int rc;
  if ((rc = lv_resolve_disk(&j, &o)) < 0 || (rc = lv_list_vg(&j, o.vg, &r)) < 0) return rc;
  for (size_t i = 0; i < r.n; i++) {
    const lv_info *lv = &r.lv[i];
    if (!is_candidate(lv, o.name)) continue;
    int ours = lv_has_tag(lv, LV_TAG) &&
               lv_decode_snapshot_name(o.name, lv->name, name, sizeof name) == 0;
    snprintf(obj, sizeof obj, "%s/%s", lv->vg, lv->name);
    lv_fill_note(lv, note, sizeof note);
    vmsnap_list_entry e = {
      .struct_size = sizeof e,
      .object = obj,
      .snapshot_name = ours ? name : NULL,
      .ctime_sec = lv->ctime,
      .size = used_bytes(lv),
      .note = note,
    };
    info->host->list_entry(job, &e);
  }
  lv_report_free(&r);
  return 0;
}
