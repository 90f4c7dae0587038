/* classic.c — snapshots of classic (thick) LVs: a COW volume of a fixed
 * size (lvcreate -s -L), reverted by merging it into the origin
 * (lvconvert --merge).
 *
 * The merge uses the snapshot up, and while it copies the snapshot's
 * chunks back, the origin's other snapshots take copy-on-write copies of
 * every chunk it overwrites, so they may overflow. prepare estimates that
 * (the snapshot's used COW space against each sibling's free space) and
 * refuses a merge that would overflow one. An overflowed (invalid)
 * snapshot is refused. The merge runs in revert_finish (irreversible, no
 * cancel): at once when nothing has the origin open, with progress read
 * from the snapshot-merge target's status through libdevmapper; else LVM
 * starts it on the origin's next activation, and the result says so.
 * When the merge finished, the reverted point is kept: a fresh snapshot
 * of the same name and size (the merged one's space is free again). */
#include "lvm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_util.h"

static const char nothing[] = "nothing was changed";

int lv_classic_prepare_create(const lv_job *j, const lv_origin *o, const lv_info *ol,
                              const lv_report *r)
{
  const char *spec = lv_disk_option(j, "size"), *why = NULL;
  uint64_t size;
  char need[32], have[32], osz[32], text[32];
  (void)r;
  if (lv_snapshot_size(spec, ol->size, ol->extent_size, &size, &why) < 0)
    return j->host->error(j->job, VMSNAP_E_INVALID, "bad size=%s: %s; %s", spec ? spec : "", why,
                          nothing);
  if (ol->vg_free < size) {
    vp_human_size(size, need, sizeof need);
    vp_human_size(ol->vg_free, have, sizeof have);
    vp_human_size(ol->size, osz, sizeof osz);
    return j->host->error(j->job, VMSNAP_E_NOSPC,
                          "the volume group %s has %s free, "
                          "and a classic snapshot of %s/%s (%s) needs %s (%s); add a physical "
                          "volume (vgextend %s DEVICE), free some extents, or ask for less with "
                          "size= on the disk; %s",
                          o->vg, have, o->vg, o->name, osz, need,
                          spec ? "as size= asks"
                               : "the default: 20% of the origin, at "
                                 "least 64 MiB",
                          o->vg, nothing);
  }
  snprintf(text, sizeof text, "%" PRIu64, size);
  int rc = j->host->set(j->job, "kind", "classic");
  return rc < 0 ? rc : j->host->set(j->job, "size", text);
}

/* Would merging snap overflow another snapshot of the same origin? */
static int check_siblings(const lv_job *j, const lv_report *r, const lv_info *snap)
{
  double used = snap->snap_percent > 0 ? snap->snap_percent : 0;
  uint64_t need = (uint64_t)((double)snap->size * used / 100.0);
  char list[1024] = "", nb[32], fb[32];
  size_t n = 0;
  int tight = 0;
  for (size_t i = 0; i < r->n; i++) {
    const lv_info *s = &r->lv[i];
    if (s == snap || !lv_is_classic_snapshot(s) || strcmp(s->origin, snap->origin) != 0 ||
        lv_is_invalid(s))
      continue;
    double sp = s->snap_percent > 0 ? s->snap_percent : 0;
    uint64_t free_b = (uint64_t)((double)s->size * (100.0 - sp) / 100.0);
    if (free_b < need) {
      vp_human_size(free_b, fb, sizeof fb);
      n += (size_t)snprintf(list + n, n < sizeof list ? sizeof list - n : 0, "%s%s/%s (%s free)",
                            n ? ", " : "", s->vg, s->name, fb);
    } else if (free_b < 2 * need) {
      tight = 1;
    }
  }
  vp_human_size(need, nb, sizeof nb);
  if (n)
    return j->host->error(j->job, VMSNAP_E_NOSPC,
                          "merging %s/%s writes back about %s "
                          "into %s, and the origin's other snapshots take a copy of what it "
                          "overwrites: %s would overflow and become invalid; grow them first "
                          "(lvextend -L+SIZE VG/LV) or delete them; %s",
                          snap->vg, snap->name, nb, snap->origin, list, nothing);
  if (tight)
    j->host->warn(j->job, "merging %s/%s writes back about %s: some other snapshots of %s have "
                  "less than twice that free and fill up noticeably", snap->vg, snap->name, nb,
                  snap->origin);
  return 0;
}

int lv_classic_prepare_revert(const lv_job *j, const lv_report *r, const lv_info *snap)
{
  const lv_info *origin = lv_find_name(r, snap->origin);
  char dmname[300];
  lvdm_state dm;
  int rc;
  if (lv_is_invalid(snap))
    return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                          "the snapshot %s/%s overflowed "
                          "(its COW space filled up) and LVM marked it invalid: its data is "
                          "lost and it cannot be reverted to; delete it (a larger size= keeps "
                          "the next one valid); %s",
                          snap->vg, snap->name, nothing);
  if (snap->attr[0] == 'S' || (origin && lv_is_merging(origin)))
    return j->host->error(j->job, VMSNAP_E_BUSY,
                          "a merge into %s/%s is already "
                          "pending (it runs on the origin's next activation: lvchange -an "
                          "then -ay once nothing has it open); wait for it; %s",
                          snap->vg, snap->origin, nothing);
  if (!origin || lv_dm_name(snap->vg, snap->origin, NULL, dmname, sizeof dmname) < 0)
    return j->host->error(j->job, VMSNAP_E_NOT_FOUND,
                          "the snapshot's origin %s/%s "
                          "is gone; %s",
                          snap->vg, snap->origin, nothing);
  if (lvdm_read(dmname, 0, 0, 0, &dm) == 0 && dm.exists && dm.open_count > 0 &&
      !(j->info->flags & VMSNAP_JOB_FORCE))
    return j->host->error(j->job, VMSNAP_E_BUSY,
                          "%s/%s is open (open count %d: "
                          "mounted, or used by a process or a VM), so LVM would only merge on "
                          "its next activation; close it, or add --force to schedule the "
                          "merge for then; %s",
                          snap->vg, snap->origin, dm.open_count, nothing);
  if ((rc = check_siblings(j, r, snap)) < 0) return rc;
  return j->host->set(j->job, "revert-merge-uuid", snap->uuid);
}

/* ---- the merge ---------------------------------------------------------- */

typedef struct merge_watch {
  char dmname[300];   /* the origin's device */
  uint64_t start;     /* allocated sectors when first seen merging */
  uint64_t total;     /* the last total reported, in bytes */
  int deferred;       /* lvm said: on next activation */
  int lvmpolld_absent;
} merge_watch;

/* Each line lvconvert prints (it polls every second): read the merge's
 * real state from the snapshot-merge target. */
static int merge_line(void *user, const char *line, uint64_t *done, uint64_t *total)
{
  merge_watch *w = user;
  lvdm_state dm;
  uint64_t alloc, tot, meta;
  if (strstr(line, "next activation")) w->deferred = 1;
  if (strstr(line, "lvmpolld")) w->lvmpolld_absent = 1;
  if (lvdm_read(w->dmname, 0, 0, 1, &dm) < 0 || !dm.exists ||
      strcmp(dm.target, "snapshot-merge") != 0 ||
      lvdm_parse_snapshot_status(dm.params, &alloc, &tot, &meta) < 0)
    return 0;
  if (!w->start || alloc > w->start) w->start = alloc;
  if (w->start <= meta) return 0;
  *total = w->total = (w->start - meta) * 512;
  *done = (w->start - alloc) * 512;
  return 1;
}

static int start_merge(const lv_job *j, const char *vg, const char *name, merge_watch *w)
{
  char full[300], what[1024];
  snprintf(full, sizeof full, "%s/%s", vg, name);
  snprintf(what, sizeof what, "cannot merge the snapshot %s into its origin", full);
  const char *argv[] = {"lvm", "lvconvert", "--merge", "-y", "-i", "1", full, NULL};
  int rc = lv_run(j, argv, merge_line, w, NULL, what,
                  w->lvmpolld_absent ? "lvmpolld is not running: start it (lvm2-lvmpolld) or "
                                       "set global/use_lvmpolld=0, then run snapctl recover"
                                     : "fix this and run snapctl recover");
  return rc;
}

/* Merge started earlier (a crash, or LVM's poller died): poll it again. */
static int resume_merge(const lv_job *j, const char *vg, const char *name, merge_watch *w)
{
  char full[300], what[1024];
  lvdm_state dm;
  if (lvdm_read(w->dmname, 0, 0, 1, &dm) < 0 || !dm.exists ||
      strcmp(dm.target, "snapshot-merge") != 0) {
    w->deferred = 1; /* waits for the origin's activation */
    return 0;
  }
  snprintf(full, sizeof full, "%s/%s", vg, name);
  snprintf(what, sizeof what, "cannot follow the merge of %s", full);
  const char *argv[] = {"lvm", "lvconvert", "--startpoll", "-i", "1", full, NULL};
  return lv_run(j, argv, merge_line, w, NULL, what, "fix this and run snapctl recover");
}

/* The reverted point, kept: a fresh snapshot once the merge is done. Not
 * an error when it fails (the revert itself is done): why says what. */
static int keep_point(const lv_job *j, const char *vg, const char *name, const char *origin,
                      char *why, size_t whylen)
{
  const char *size = j->host->get(j->job, "size");
  char from[300], tag[96], sz[40];
  snprintf(why, whylen, "no size or uuid recorded");
  if (!size || lv_snapshot_tag(j, tag, sizeof tag) < 0) return -1;
  snprintf(from, sizeof from, "%s/%s", vg, origin);
  snprintf(sz, sizeof sz, "%sb", size);
  const char *argv[] = {"lvm", "lvcreate", "-s", "-n", name, "-L", sz, "--addtag", LV_TAG,
                        "--addtag", tag, from, NULL};
  if (lv_run_text(j, argv, NULL, NULL, NULL, why, whylen) < 0) return -1;
  char uuid[LV_UUID_LEN + 2];
  return lv_active_uuid(vg, name, uuid, sizeof uuid) == 0
             ? j->host->set(j->job, "lv-uuid", uuid)
             : 0; /* the tag identifies it */
}

int lv_classic_revert_finish(const lv_job *j)
{
  const char *merge_uuid = j->host->get(j->job, "revert-merge-uuid");
  const char *origin = j->host->get(j->job, "origin");
  char vg[128], name[128];
  merge_watch w = {0};
  lv_report r = {0};
  int rc;

  if ((rc = lv_recorded(j, vg, sizeof vg, name, sizeof name)) < 0) return rc;
  if (!merge_uuid || !origin || lv_dm_name(vg, origin, NULL, w.dmname, sizeof w.dmname) < 0)
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "the revert's prepare recorded "
                          "nothing to merge; run snapctl recover");
  /* Right after prepare, in the same op under the domain lock, the
   * snapshot is as prepare read it: a plain one ('s'). Only a finish that
   * recover restarts must look again (an lvm run: 0.3-0.5 s in the test
   * guest, a quarter of the revert). */
  char state = 's';
  int kept = 0;
  if (j->info->flags & VMSNAP_JOB_RECOVERY) {
    if ((rc = lv_list_vg(j, vg, &r)) < 0) return rc;
    const lv_info *snap = lv_find_uuid(&r, merge_uuid);
    state = snap ? snap->attr[0] : '\0';
    /* Merged earlier: was the point kept already? */
    const lv_info *now = lv_find_name(&r, name);
    kept = !snap && now && lv_is_ours(j, now);
    lv_report_free(&r);
  }
  j->host->progress(j->job, 0, 0);
  if (state == 's') rc = start_merge(j, vg, name, &w);
  else if (state == 'S') rc = resume_merge(j, vg, name, &w);
  if (rc < 0) return rc;
  /* Did the merge finish? lvconvert waits for it unless LVM put it off to
   * the origin's next activation (it said so); then the merged snapshot's
   * device is gone. A snapshot of that name now is the kept point (a
   * restarted finish). */
  char sdm[300];
  lvdm_state sst;
  int gone = state == 's' || state == 'S' ? !w.deferred : 1;
  if (gone && lv_dm_name(vg, name, NULL, sdm, sizeof sdm) == 0 && lvdm_read(sdm, 0, 0, 1, &sst) == 0 &&
      sst.exists && !strcmp(sst.target, "snapshot")) {
    char u[LV_UUID_LEN + 2];
    gone = lv_active_uuid(vg, name, u, sizeof u) == 0 && strcmp(u, merge_uuid) != 0;
  }
  kept = kept && gone;
  if (!gone) {
    j->host->set(j->job, "merge", "pending");
    j->host->warn(j->job, "the merge of %s/%s into %s/%s will run on the origin's next "
                  "activation (it is open, or inactive, now): close it, then lvchange -an "
                  "%s/%s && lvchange -ay %s/%s; until then the disk still reads its current "
                  "data", vg, name, vg, origin, vg, origin, vg, origin);
    return 0;
  }
  j->host->set(j->job, "merge", "done");
  char why[1200] = "";
  if (!kept) kept = keep_point(j, vg, name, origin, why, sizeof why) == 0;
  j->host->progress(j->job, w.total ? w.total : 1, w.total ? w.total : 1);
  if (kept)
    j->host->warn(j->job, "merged %s/%s into %s/%s now; the reverted point was kept as a fresh "
                  "snapshot of the same name", vg, name, vg, origin);
  else
    j->host->warn(j->job, "merged %s/%s into %s/%s now; the snapshot is used up: a fresh one "
                  "could not be taken (%s)", vg, name, vg, origin, why);
  return 0;
}
