/* create.c — taking and removing a snapshot LV, and the checks before
 * (prepare): the disk's LV, the snapshot's name, the space it needs. */
#include "lvm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_util.h"

static const char nothing[] = "nothing was changed";

/* The origin in the report, checked against device-mapper's uuid. */
static int find_origin(const lv_job *j, const lv_origin *o, const lv_report *r,
                       const lv_info **out)
{
  const lv_info *ol = lv_find_name(r, o->name);
  char u[64];
  if (ol) lv_uuid_strip(ol->uuid, u, sizeof u);
  if (!ol || strcmp(u, o->dm_uuid + 36) != 0)
    return j->host->error(j->job, VMSNAP_E_NOT_FOUND,
                          "LVM reports no LV %s/%s with "
                          "the device's uuid; was it renamed or removed meanwhile? %s",
                          o->vg, o->name, nothing);
  *out = ol;
  return 0;
}

static int check_origin_kind(const lv_job *j, const lv_origin *o, const lv_info *ol)
{
  char t = ol->attr[0];
  if (lv_is_classic_snapshot(ol))
    return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                          "%s/%s is itself a classic "
                          "snapshot, and LVM cannot snapshot a classic snapshot; %s",
                          o->vg, o->name, nothing);
  if (lv_is_merging(ol))
    return j->host->error(j->job, VMSNAP_E_BUSY,
                          "a snapshot merge into %s/%s is "
                          "pending or running (it finishes on the LV's next activation: "
                          "lvchange -an then -ay, once nothing has it open); LVM refuses new "
                          "snapshots meanwhile; %s",
                          o->vg, o->name, nothing);
  if (lv_is_thin(ol) || t == '-' || t == 'o' || t == 'r' || t == 'm' || t == 'C') return 0;
  return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                        "%s/%s is an LV of type '%c' "
                        "(%s), which the lvm backend does not snapshot; %s",
                        o->vg, o->name, t, ol->segtype, nothing);
}

/* A thin origin's pool (data_percent as LVM or device-mapper reports it,
 * negative when unknown): refuse a full one, warn of a filling one. */
static int prepare_thin(const lv_job *j, const char *vg, const char *pool, double data_percent)
{
  if (data_percent >= 100.0)
    return j->host->error(j->job, VMSNAP_E_NOSPC,
                          "the thin pool %s/%s is full "
                          "(data 100%%): a snapshot could not take a single write; extend it "
                          "(lvextend -L+SIZE %s/%s); %s",
                          vg, pool, vg, pool, nothing);
  if (data_percent >= 80.0)
    j->host->warn(j->job, "the thin pool %s/%s is %.1f%% full; snapshots keep old data in it: "
                  "extend it before it fills (a full pool stops every thin LV in it)",
                  vg, pool, data_percent);
  return j->host->set(j->job, "kind", "thin");
}

/* Everything LVM's report says against snapshotting the origin now as
 * name: not an LV the backend snapshots, a merge pending, the name taken,
 * the VG or the thin pool full. Records kind and size when set_kind. */
static int check_in_report(const lv_job *j, const lv_origin *o, const char *name, int set_kind)
{
  lv_report r = {0};
  const lv_info *ol = NULL;
  int rc;
  if ((rc = lv_list_vg(j, o->vg, &r)) < 0) return rc;
  if ((rc = find_origin(j, o, &r, &ol)) < 0 || (rc = check_origin_kind(j, o, ol)) < 0) goto out;
  if (lv_find_name(&r, name)) {
    rc = j->host->error(j->job, VMSNAP_E_EXISTS,
                        "an LV %s/%s already exists, and "
                        "vmsnap never reuses an object it did not make; rename or remove it, "
                        "or choose another snapshot name; %s",
                        o->vg, name, nothing);
    goto out;
  }
  if (set_kind) rc = j->host->set(j->job, "origin-uuid", ol->uuid);
  const lv_info *pool = lv_is_thin(ol) ? lv_find_name(&r, ol->pool) : NULL;
  if (rc == 0)
    rc = !lv_is_thin(ol) ? lv_classic_prepare_create(j, o, ol, &r)
         : prepare_thin(j, o->vg, ol->pool, pool ? pool->data_percent : -1);
out:
  lv_report_free(&r);
  return rc;
}

/* The thin pool of a thin origin from device-mapper (its table names the
 * pool's device); unknown when device-mapper cannot tell. */
static int prepare_thin_dm(const lv_job *j, const lv_origin *o, const char *table_params)
{
  unsigned pmaj, pmin;
  lvdm_state pool;
  uint64_t used, total;
  char vg[128], name[128];
  if (sscanf(table_params, "%u:%u", &pmaj, &pmin) != 2 ||
      lvdm_read(NULL, pmaj, pmin, 1, &pool) < 0 || !pool.exists ||
      strcmp(pool.target, "thin-pool") || lvdm_parse_pool_status(pool.params, &used, &total) < 0)
    return prepare_thin(j, o->vg, "?", -1);
  size_t n = strlen(pool.name);
  if (n > 6 && !strcmp(pool.name + n - 6, "-tpool")) pool.name[n - 6] = '\0';
  if (lv_dm_split(pool.name, vg, sizeof vg, name, sizeof name) < 0) snprintf(name, sizeof name, "?");
  return prepare_thin(j, o->vg, name, 100.0 * (double)used / (double)total);
}

/* The common case without an lvm run (a few hundred ms): the origin is
 * active, so device-mapper knows its kind, size and uuid. 1 when its
 * kind needs LVM's report (raid, cache, a snapshot, a running merge…). */
static int prepare_from_dm(const lv_job *j, const lv_origin *o)
{
  lvdm_table_info t;
  char uuid[LV_UUID_LEN + 2], text[32];
  int thin;
  if (lvdm_table(o->major, o->minor, &t) < 0) return 1;
  if (!strcmp(t.type, "thin")) thin = 1;
  else if (!strcmp(t.type, "linear") || !strcmp(t.type, "striped") ||
           !strcmp(t.type, "snapshot-origin"))
    thin = 0;
  else
    return 1;
  if (lv_uuid_format(o->dm_uuid + 36, uuid, sizeof uuid) < 0) return 1;
  int rc = j->host->set(j->job, "origin-uuid", uuid);
  if (rc < 0) return rc;
  if (thin) return prepare_thin_dm(j, o, t.params);
  /* The VG's free extents are not device-mapper's to know: lvcreate
   * refuses when they do not suffice, and create then says how many. */
  const char *spec = lv_disk_option(j, "size"), *why = NULL;
  uint64_t size;
  if (lv_snapshot_size(spec, t.sectors * 512, 512, &size, &why) < 0)
    return j->host->error(j->job, VMSNAP_E_INVALID, "bad size=%s: %s; %s", spec ? spec : "", why,
                          nothing);
  snprintf(text, sizeof text, "%" PRIu64, size);
  if ((rc = j->host->set(j->job, "kind", "classic")) < 0) return rc;
  return j->host->set(j->job, "size", text);
}

int lv_prepare_create(const lv_job *j)
{
  lv_origin o;
  char name[LV_NAME_MAX + 1], full[300], tag[96];
  int rc;

  if (j->info->disk->live)
    return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                          "a running QEMU serves it; the "
                          "lvm backend snapshots offline disks only; %s",
                          nothing);
  if ((rc = lv_snapshot_tag(j, tag, sizeof tag)) < 0 || (rc = lv_resolve_disk(j, &o)) < 0)
    return rc;
  if (!j->info->object_name ||
      lv_snapshot_name(o.vg, o.name, j->info->object_name, name, sizeof name) < 0 ||
      !lv_name_valid(name, NULL))
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "no LV name fits LVM's limits for "
                          "a snapshot of %s/%s (the names are too long); %s",
                          o.vg, o.name, nothing);
  snprintf(full, sizeof full, "%s/%s", o.vg, name);
  if ((rc = j->host->set(j->job, "lv", full)) < 0 || (rc = j->host->set(j->job, "vg", o.vg)) < 0 ||
      (rc = j->host->set(j->job, "origin", o.name)) < 0)
    return rc;
  rc = prepare_from_dm(j, &o);
  return rc == 1 ? check_in_report(j, &o, name, 1) : rc;
}

/* Deletes the LV named name in vg if it carries this snapshot's tag. */
static int drop_ours(const lv_job *j, const char *vg, const char *name)
{
  char tag[96], sel[400], why[1200];
  if (lv_snapshot_tag(j, tag, sizeof tag) < 0) return 0;
  snprintf(sel, sizeof sel, "lv_name=%s && lv_tags={%s}", name, tag);
  const char *argv[] = {"lvm", "lvremove", "-f", "-y", "-S", sel, vg, NULL};
  return lv_run_text(j, argv, NULL, NULL, NULL, why, sizeof why);
}

int lv_create(vmsnap_job *job, const vmsnap_job_info *info)
{
  lv_job j = {job, info->host, info, info->disk->target};
  const char *origin = info->host->get(job, "origin"), *kind = info->host->get(job, "kind");
  const char *size = info->host->get(job, "size");
  char vg[128], name[128], from[300], tag[96], sz[40], what[1024];
  int rc;

  if ((rc = lv_recorded(&j, vg, sizeof vg, name, sizeof name)) < 0) return rc;
  if (!origin || !kind || !lv_name_valid(origin, NULL) || (strcmp(kind, "thin") && !size))
    return info->host->error(job, VMSNAP_E_INVALID,
                             "prepare recorded no origin; "
                             "prepare must run before create");
  if ((rc = lv_snapshot_tag(&j, tag, sizeof tag)) < 0) return rc;
  snprintf(from, sizeof from, "%s/%s", vg, origin);
  snprintf(sz, sizeof sz, "%sb", size ? size : "0");
  snprintf(what, sizeof what, "cannot snapshot %s as %s/%s", from, vg, name);
  const char *classic[] = {"lvm", "lvcreate", "-s", "-n", name, "-L", sz, "--addtag", LV_TAG,
                           "--addtag", tag, from, NULL};
  const char *thin[] = {"lvm", "lvcreate", "-s", "-n", name, "--addtag", LV_TAG, "--addtag", tag,
                        from, NULL};
  info->host->progress(job, 0, 1);
  char why[1200];
  rc = lv_run_text(&j, strcmp(kind, "thin") ? classic : thin, NULL, NULL, NULL, why, sizeof why);
  if (rc < 0) {
    /* prepare trusted device-mapper: LVM's report says what stood in the
     * way (the VG full, a merge pending, the name taken) as a prepare
     * that read it would have; else lvcreate's own words (or why lvm did
     * not run at all). */
    int found = 1;
    if (why[0]) {
      lv_origin o = {0};
      snprintf(o.vg, sizeof o.vg, "%s", vg);
      snprintf(o.name, sizeof o.name, "%s", origin);
      found = lv_resolve_disk(&j, &o);
      if (found == 0) found = check_in_report(&j, &o, name, 0);
    }
    rc = found < 0 ? found /* its message is the one set */
                   : lv_explain(&j, rc, why, what, "nothing was kept");
  }
  /* The LV carries this snapshot's tag, which is what identifies it; its
   * uuid is recorded too when device-mapper has it at hand (a classic
   * snapshot is active, a thin one skips activation) — no second lvm run. */
  char uuid[LV_UUID_LEN + 2];
  if (rc == 0 && lv_active_uuid(vg, name, uuid, sizeof uuid) == 0)
    rc = info->host->set(job, "lv-uuid", uuid);
  if (rc < 0) {
    /* Cancelled or failed: lvcreate may have made it all the same. */
    drop_ours(&j, vg, name);
    return rc;
  }
  info->host->progress(job, 1, 1);
  return 0;
}

/* The snapshot LV as recorded: by uuid (it may have been renamed), else by
 * name. NULL when it is gone. */
static const lv_info *find_snapshot(const lv_job *j, const lv_report *r, const char *name)
{
  const lv_info *lv = lv_find_uuid(r, j->host->get(j->job, "lv-uuid"));
  return lv ? lv : lv_find_name(r, name);
}

int lv_remove(vmsnap_job *job, const vmsnap_job_info *info)
{
  lv_job j = {job, info->host, info, info->disk->target};
  char vg[128], name[128];
  lv_report r = {0};
  int rc;

  if (!info->host->get(job, "lv")) return 0; /* never decided: nothing was made */
  if ((rc = lv_recorded(&j, vg, sizeof vg, name, sizeof name)) < 0) return rc;
  /* One lvm run in the common case: remove the LV of that name only if it
   * carries this snapshot's tag (nothing matching is success). A merging
   * snapshot (LVM refuses) is looked at closer below. */
  char tag[96], sel[400], why[1200], full[300], active[LV_UUID_LEN + 2];
  if ((rc = lv_snapshot_tag(&j, tag, sizeof tag)) < 0) return rc;
  snprintf(sel, sizeof sel, "lv_name=%s && lv_tags={%s}", name, tag);
  snprintf(full, sizeof full, "%s/%s", vg, name);
  const char *by_tag[] = {"lvm", "lvremove", "-f", "-y", "-S", sel, vg, NULL};
  /* An active LV of that name whose device-mapper uuid is the one create
   * recorded is ours: removed by name, which costs lvm less than a
   * selection (~0.1 s in the test guest). Inactive ones (thin snapshots
   * skip activation) are selected by tag. */
  const char *uuid = info->host->get(job, "lv-uuid");
  int known = uuid && lv_active_uuid(vg, name, active, sizeof active) == 0 &&
              strcmp(active, uuid) == 0;
  const char *by_name[] = {"lvm", "lvremove", "-f", "-y", full, NULL};
  if (lv_run_text(&j, known ? by_name : by_tag, NULL, NULL, NULL, why, sizeof why) == 0) return 0;
  if ((rc = lv_list_vg(&j, vg, &r)) < 0) return rc;
  const lv_info *lv = find_snapshot(&j, &r, name);
  if (!lv) {
    rc = 0; /* gone: done already, or used up by a merge */
  } else if (!lv_is_ours(&j, lv)) {
    info->host->warn(job, "%s/%s is not the LV this snapshot made (another uuid, no vmsnap tag "
                     "for it): left alone", vg, lv->name);
    rc = 0;
  } else if (lv->attr[0] == 'S') {
    info->host->warn(job, "%s/%s is merging into its origin (a revert waits for the origin's "
                     "next activation); LVM removes it when the merge completes", vg, lv->name);
    rc = 0;
  } else {
    rc = lv_remove_lv(&j, vg, lv->name);
  }
  lv_report_free(&r);
  return rc;
}

int lv_prepare_delete(const lv_job *j)
{
  char vg[128], name[128], dmname[300];
  lvdm_state dm;
  if (!j->host->get(j->job, "lv")) return 0;
  if (lv_recorded(j, vg, sizeof vg, name, sizeof name) < 0 ||
      lv_dm_name(vg, name, NULL, dmname, sizeof dmname) < 0)
    return 0; /* remove says what is wrong, or finds nothing */
  if (lvdm_read(dmname, 0, 0, 0, &dm) == 0 && dm.exists && dm.open_count > 0)
    return j->host->error(j->job, VMSNAP_E_BUSY,
                          "the snapshot LV %s/%s is open "
                          "(open count %d: mounted, or used by a process or a VM); close it "
                          "first; %s",
                          vg, name, dm.open_count, nothing);
  return 0;
}

int lv_prepare_revert(const lv_job *j)
{
  char vg[128], name[128];
  lv_report r = {0};
  lv_origin o;
  int rc;

  if (j->info->disk->live)
    return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                          "a running QEMU serves it; "
                          "shut the guest down first; %s",
                          nothing);
  if ((rc = lv_recorded(j, vg, sizeof vg, name, sizeof name)) < 0 ||
      (rc = lv_resolve_disk(j, &o)) < 0)
    return rc;
  if (strcmp(o.vg, vg) != 0)
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "the disk is %s/%s now, but the "
                          "snapshot is in volume group %s; %s",
                          o.vg, o.name, vg, nothing);
  if ((rc = lv_list_vg(j, vg, &r)) < 0) return rc;
  const lv_info *lv = find_snapshot(j, &r, name);
  const char *merge = j->host->get(j->job, "merge");
  if (!lv || !lv_is_ours(j, lv)) {
    rc = j->host->error(
        j->job, VMSNAP_E_NOT_FOUND,
        "the snapshot LV %s/%s is %s; "
        "this snapshot cannot be reverted to (delete it); %s",
        vg, name,
        !lv ? (merge ? "used up: an earlier revert merged it" : "gone (removed outside vmsnap?)")
            : "another LV now (no vmsnap tag for this snapshot)",
        nothing);
  } else {
    const char *kind = j->host->get(j->job, "kind");
    rc = kind && !strcmp(kind, "thin") ? lv_thin_prepare_revert(j, &o, &r, lv)
                                       : lv_classic_prepare_revert(j, &r, lv);
  }
  lv_report_free(&r);
  return rc;
}
