/* thin.c — reverting a thin LV by branching.
 *
 * LVM has no atomic swap of two LVs, so the revert is a journaled
 * sequence, each step recognised afterwards by LV uuids so that recover
 * can finish it from wherever a crash stopped it:
 *   phase one (revert, undoable): a thin snapshot of the snapshot, staged
 *     as ORIGIN-vmsnap-rv-<hash> with the tag vmsnap-revert-<uuid>;
 *     revert_abort removes it;
 *   phase two (revert_finish, restartable):
 *     1. lvrename ORIGIN -> ORIGIN-vmsnap-old-<hash>  (the old state)
 *     2. lvrename the staged LV -> ORIGIN
 *     3. lvchange -kn (it activates at boot like the origin did), drop its
 *        staging tags, activate it
 *     4. lvremove the old state.
 * The snapshot reverted to and every other snapshot stay (they are thin
 * snapshots: they do not depend on the origin), so newer snapshots
 * survive. The disk's LV has a new uuid afterwards: recorded as
 * "origin-uuid" here and in every other snapshot of the disk (set_other). */
#include "lvm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char nothing[] = "nothing was changed";

#define HOST_HAS(h, f) \
  ((h)->struct_size >= offsetof(vmsnap_host, f) + sizeof((h)->f) && (h)->f != NULL)

static int revert_tag(const lv_job *j, char *buf, size_t len)
{
  char t[96];
  int rc = lv_snapshot_tag(j, t, sizeof t);
  if (rc < 0) return rc;
  snprintf(buf, len, LV_TAG "-revert-%s", t + strlen(LV_TAG) + 1);
  return 0;
}

int lv_thin_prepare_revert(const lv_job *j, const lv_origin *o, const lv_report *r,
                           const lv_info *snap)
{
  const lv_info *ol = lv_find_name(r, o->name);
  char staged[LV_NAME_MAX + 1], old[LV_NAME_MAX + 1], full[300], tag[128];
  lvdm_state dm;
  int rc;
  if (!lv_is_thin(snap) || !ol || !lv_is_thin(ol))
    return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                          "%s/%s or %s/%s is not a thin "
                          "LV any more; %s",
                          snap->vg, snap->name, o->vg, o->name, nothing);
  if (lvdm_read(NULL, o->major, o->minor, 0, &dm) == 0 && dm.exists && dm.open_count > 0)
    return j->host->error(j->job, VMSNAP_E_BUSY,
                          "%s/%s is open (open count %d: "
                          "mounted, or used by a process or a VM); a thin revert renames "
                          "another LV into its place, and its user would go on writing to "
                          "the old one (this cannot be forced); close it first; %s",
                          o->vg, o->name, dm.open_count, nothing);
  if ((rc = revert_tag(j, tag, sizeof tag)) < 0) return rc;
  if (lv_helper_name(o->vg, o->name, "rv", j->info->snapshot_uuid, staged, sizeof staged) < 0 ||
      lv_helper_name(o->vg, o->name, "old", j->info->snapshot_uuid, old, sizeof old) < 0)
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "the LV name %s is too long to "
                          "derive the revert's helper names; %s",
                          o->name, nothing);
  const lv_info *s = lv_find_name(r, staged);
  if (s && lv_has_tag(s, tag) && (rc = j->host->set(j->job, "revert-leftover", "yes")) < 0)
    return rc;
  if ((s && !lv_has_tag(s, tag)) || lv_find_name(r, old))
    return j->host->error(j->job, VMSNAP_E_EXISTS,
                          "an LV %s/%s exists that vmsnap did "
                          "not make for this revert; rename or remove it; %s",
                          o->vg, s ? staged : old, nothing);
  snprintf(full, sizeof full, "%s/%s", o->vg, staged);
  if ((rc = j->host->set(j->job, "revert-staged", full)) < 0 ||
      (rc = j->host->set(j->job, "revert-old", old)) < 0 ||
      (rc = j->host->set(j->job, "revert-origin", o->name)) < 0 ||
      (rc = j->host->set(j->job, "revert-origin-uuid", ol->uuid)) < 0)
    return rc;
  return 0;
}

/* The staged LV's VG and name, from "revert-staged". */
static int staged_name(const lv_job *j, char *vg, size_t vglen, char *name, size_t nlen)
{
  const char *full = j->host->get(j->job, "revert-staged");
  const char *slash = full ? strchr(full, '/') : NULL;
  if (!slash || (size_t)(slash - full) >= vglen || strlen(slash + 1) >= nlen ||
      !lv_name_valid(slash + 1, NULL))
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "no staging LV was recorded; "
                          "prepare must run before revert");
  snprintf(vg, vglen, "%.*s", (int)(slash - full), full);
  snprintf(name, nlen, "%s", slash + 1);
  return 0;
}

/* Removes the staged LV if it is ours and not (yet) the disk. */
static int drop_staged(const lv_job *j, const char *vg, const char *name)
{
  char tag[128];
  lv_report r = {0};
  int rc = revert_tag(j, tag, sizeof tag);
  if (rc < 0 || (rc = lv_list_vg(j, vg, &r)) < 0) return rc;
  const lv_info *s = lv_find_name(&r, name);
  rc = s && lv_has_tag(s, tag) ? lv_remove_lv(j, vg, name) : 0;
  lv_report_free(&r);
  return rc;
}

int lv_thin_revert(const lv_job *j)
{
  char vg[128], name[128], svg[128], sname[128], from[300], tag[128], what[1024];
  int rc;
  if ((rc = staged_name(j, vg, sizeof vg, name, sizeof name)) < 0 ||
      (rc = lv_recorded(j, svg, sizeof svg, sname, sizeof sname)) < 0 ||
      (rc = revert_tag(j, tag, sizeof tag)) < 0)
    return rc;
  /* A leftover of an earlier attempt at this revert (prepare saw it). */
  if (j->host->get(j->job, "revert-leftover") && (rc = drop_staged(j, vg, name)) < 0) return rc;
  snprintf(from, sizeof from, "%s/%s", svg, sname);
  snprintf(what, sizeof what, "cannot stage a thin snapshot of %s as %s/%s", from, vg, name);
  const char *argv[] = {"lvm", "lvcreate", "-s", "-n", name, "--addtag", LV_TAG, "--addtag",
                        tag, from, NULL};
  j->host->progress(j->job, 0, 1);
  /* The staged LV is known by its tag from here on (revert_finish). */
  rc = lv_run(j, argv, NULL, NULL, NULL, what, "the disk is unchanged");
  if (rc < 0) {
    drop_staged(j, vg, name);
    return rc;
  }
  j->host->progress(j->job, 1, 1);
  return 0;
}

int lv_thin_revert_abort(const lv_job *j)
{
  char vg[128], name[128];
  if (!j->host->get(j->job, "revert-staged")) return 0; /* prepare decided nothing */
  if (staged_name(j, vg, sizeof vg, name, sizeof name) < 0) return 0;
  return drop_staged(j, vg, name);
}

static int rename_lv(const lv_job *j, const char *vg, const char *from, const char *to)
{
  char what[1024];
  snprintf(what, sizeof what, "cannot rename %s/%s to %s", vg, from, to);
  const char *argv[] = {"lvm", "lvrename", vg, from, to, NULL};
  return lv_run(j, argv, NULL, NULL, NULL, what, "fix this and run snapctl recover");
}

/* The new origin: activates at boot like any LV, no staging tags. */
static int settle_new(const lv_job *j, const char *vg, const char *name)
{
  char full[300], tag[128], what[1024];
  int rc = revert_tag(j, tag, sizeof tag);
  if (rc < 0) return rc;
  snprintf(full, sizeof full, "%s/%s", vg, name);
  snprintf(what, sizeof what, "cannot make %s activate at boot", full);
  const char *argv[] = {"lvm", "lvchange", "-kn", "--deltag", LV_TAG, "--deltag", tag, full, NULL};
  if ((rc = lv_run(j, argv, NULL, NULL, NULL, what, "fix this and run snapctl recover")) < 0)
    return rc;
  snprintf(what, sizeof what, "cannot activate %s", full);
  const char *act[] = {"lvm", "lvchange", "-ay", full, NULL};
  return lv_run(j, act, NULL, NULL, NULL, what, "fix this and run snapctl recover");
}

typedef struct uuid_update {
  const lv_job *j;
  const char *from, *to;
  int rc;
} uuid_update;

static int update_sibling(void *user, const char *uuid, const char *name,
                          const char *const *data)
{
  uuid_update *u = user;
  (void)name;
  for (size_t i = 0; data[i] && data[i + 1]; i += 2)
    if (!strcmp(data[i], "origin-uuid") && !strcmp(data[i + 1], u->from)) {
      int rc = u->j->host->set_other(u->j->job, uuid, "origin-uuid", u->to);
      if (rc < 0) u->rc = rc;
    }
  return 0;
}

/* The disk's LV is another LV now: every record of the old uuid moves. */
static int origin_moved(const lv_job *j, const char *from, const char *to)
{
  int rc = j->host->set(j->job, "origin-uuid", to);
  if (rc < 0) return rc;
  uuid_update u = {j, from, to, 0};
  if (HOST_HAS(j->host, siblings)) j->host->siblings(j->job, update_sibling, &u);
  return u.rc;
}

/* Finish right after the stage, in the same op under the domain lock: the
 * LVs are as prepare and the stage left them (the old origin at its name,
 * the staged LV at its staging name), so no lvs run is needed to find them
 * (one lvm run, 0.3-0.5 s in the test guest). The new origin's uuid comes
 * from device-mapper once it is active. */
static int finish_fresh(const lv_job *j, const char *vg, const char *staged, const char *on,
                        const char *old, const char *ou)
{
  char su[LV_UUID_LEN + 2];
  int rc;
  if ((rc = rename_lv(j, vg, on, old)) < 0 || (rc = rename_lv(j, vg, staged, on)) < 0 ||
      (rc = settle_new(j, vg, on)) < 0 || (rc = lv_remove_lv(j, vg, old)) < 0)
    return rc;
  if (lv_active_uuid(vg, on, su, sizeof su) < 0) {
    lv_report r = {0};
    if ((rc = lv_list_vg(j, vg, &r)) < 0) return rc;
    const lv_info *n = lv_find_name(&r, on);
    snprintf(su, sizeof su, "%s", n ? n->uuid : "");
    lv_report_free(&r);
    if (!n)
      return j->host->error(j->job, VMSNAP_E_BACKEND, "%s/%s is missing after the revert's "
                            "renames; check with lvs", vg, on);
  }
  return origin_moved(j, ou, su);
}

int lv_thin_revert_finish(const lv_job *j)
{
  const char *old = j->host->get(j->job, "revert-old");
  const char *on = j->host->get(j->job, "revert-origin");
  const char *ou = j->host->get(j->job, "revert-origin-uuid");
  char vg[128], staged[128], tag[128], su[LV_UUID_LEN + 2] = "";
  lv_report r = {0};
  int rc;
  if ((rc = staged_name(j, vg, sizeof vg, staged, sizeof staged)) < 0 ||
      (rc = revert_tag(j, tag, sizeof tag)) < 0)
    return rc;
  if (!old || !on || !ou || !lv_name_valid(old, NULL) || !lv_name_valid(on, NULL))
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "the revert's staging was not "
                          "recorded; run snapctl recover");
  if (!(j->info->flags & VMSNAP_JOB_RECOVERY)) return finish_fresh(j, vg, staged, on, old, ou);
  if ((rc = lv_list_vg(j, vg, &r)) < 0) return rc;
  /* The staged LV: by its staging tag, or (once settled, a restarted
   * finish) the LV now at the origin's name that is not the old origin. */
  const lv_info *lo = lv_find_uuid(&r, ou), *ls = NULL;
  for (size_t i = 0; i < r.n && !ls; i++)
    if (lv_has_tag(&r.lv[i], tag)) ls = &r.lv[i];
  if (!ls && lv_find_name(&r, on) && strcmp(lv_find_name(&r, on)->uuid, ou) != 0)
    ls = lv_find_name(&r, on);
  if (ls) snprintf(su, sizeof su, "%s", ls->uuid);
  int old_at_origin = lo && !strcmp(lo->name, on);
  int staged_waiting = ls && !strcmp(ls->name, staged);
  int old_left = lo && !strcmp(lo->name, old);
  int at_origin = lv_find_name(&r, on) != NULL;
  lv_report_free(&r);
  if (!ls)
    return j->host->error(j->job, VMSNAP_E_BACKEND,
                          "the staged LV (tag %s) is gone "
                          "from %s; the disk %s/%s %s; check with lvs and restore by hand",
                          tag, vg, vg, on, at_origin ? "still exists" : "is missing");
  if (old_at_origin && (rc = rename_lv(j, vg, on, old)) < 0) return rc;
  if (staged_waiting && (rc = rename_lv(j, vg, staged, on)) < 0) return rc;
  if ((rc = settle_new(j, vg, on)) < 0) return rc;
  if ((old_at_origin || old_left) && (rc = lv_remove_lv(j, vg, old)) < 0) return rc;
  return origin_moved(j, ou, su);
}
