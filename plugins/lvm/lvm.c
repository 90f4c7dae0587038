/* lvm.c — the LVM backend: snapshots of logical volumes. Classic (thick)
 * LVs get COW snapshots reverted by merging (classic.c); thin LVs get thin
 * snapshots reverted by branching (thin.c). Layout, names and backend
 * data: lvm.h. */
#define _GNU_SOURCE
#include "lvm.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Above dd (10) and qcow2 on a block device (50) for raw LVs; a qcow2
 * image on an LV is qcow2's unless backend=lvm is asked for. */
#define LV_SCORE 70
#define LV_SCORE_QCOW2 40

static int on_path(const char *tool)
{
  const char *path = getenv("PATH");
  char file[PATH_MAX];
  if (!path || !*path) path = "/usr/sbin:/sbin:/usr/bin:/bin";
  for (const char *p = path; *p;) {
    size_t n = strcspn(p, ":");
    if (n && (size_t)snprintf(file, sizeof file, "%.*s/%s", (int)n, p, tool) < sizeof file &&
        access(file, X_OK) == 0)
      return 1;
    p += n;
    if (*p == ':') p++;
  }
  return 0;
}

static int lv_available(char *why, size_t whylen)
{
  if (!on_path("lvm")) {
    snprintf(why, whylen, "lvm not found on PATH: install lvm2");
    return 0;
  }
  if (access("/dev/mapper/control", R_OK | W_OK) != 0) {
    snprintf(why, whylen, "no usable /dev/mapper/control: this kernel has no device-mapper "
             "(modprobe dm-mod), or vmsnap does not run as root");
    return 0;
  }
  return 1;
}

/* The disk's device-mapper state, if it is a top-level LV. */
static int lv_device(const vmsnap_disk *disk, lvdm_state *dm, int with_status)
{
  struct stat st;
  if (!disk || !disk->source || !disk->is_block_device || stat(disk->source, &st) < 0 ||
      !S_ISBLK(st.st_mode) || !lvdm_is_dm_major(major(st.st_rdev)))
    return 0;
  if (lvdm_read(NULL, major(st.st_rdev), minor(st.st_rdev), with_status, dm) < 0 || !dm->exists)
    return 0;
  /* "LVM-" + VG uuid + LV uuid, no "-real"/"-cow"/"-tpool" layer. */
  return strncmp(dm->uuid, "LVM-", 4) == 0 && strlen(dm->uuid) == 68;
}

static int lv_probe(const vmsnap_disk *disk)
{
  lvdm_state dm;
  if (!disk || disk->live) return 0;
  if (disk->mode && strcmp(disk->mode, "internal") != 0) return 0;
  if (!lv_device(disk, &dm, 0)) return 0;
  return disk->format && !strcmp(disk->format, "qcow2") ? LV_SCORE_QCOW2 : LV_SCORE;
}

static uint64_t lv_capabilities(const vmsnap_disk *disk)
{
  const uint64_t base = VMSNAP_CAP_INTERNAL | VMSNAP_CAP_REVERT_KEEPS_NEWER |
                        VMSNAP_CAP_DELETE_ANY | VMSNAP_CAP_LIST | VMSNAP_CAP_BLOCK_DEVICE;
  lvdm_state dm;
  /* At best (thin): revert branches and keeps every snapshot. */
  if (!disk) return base | VMSNAP_CAP_PROGRESS;
  if (!lv_device(disk, &dm, 1)) return base;
  if (!strcmp(dm.target, "thin")) return base;
  /* Classic: the merge uses up the snapshot, and while it runs the other
   * snapshots of the origin take copy-on-write data and may overflow. The
   * merge reports progress from the snapshot-merge target's status. */
  return base | VMSNAP_CAP_REVERT_CONSUMES_TARGET | VMSNAP_CAP_REVERT_MAY_INVALIDATE_SIBLINGS |
         VMSNAP_CAP_PROGRESS;
}

static int lv_prepare(vmsnap_job *job, const vmsnap_job_info *info)
{
  lv_job j = {job, info->host, info, info->disk->target};
  switch (info->kind) {
  case VMSNAP_JOB_CREATE: return lv_prepare_create(&j);
  case VMSNAP_JOB_REVERT: return lv_prepare_revert(&j);
  case VMSNAP_JOB_DELETE: return lv_prepare_delete(&j);
  default: return 0;
  }
}

static int is_thin_job(const lv_job *j)
{
  const char *k = j->host->get(j->job, "kind");
  return k && !strcmp(k, "thin");
}

static int lv_revert(vmsnap_job *job, const vmsnap_job_info *info)
{
  lv_job j = {job, info->host, info, info->disk->target};
  /* Classic: nothing can be staged; the merge is the irreversible part. */
  return is_thin_job(&j) ? lv_thin_revert(&j) : 0;
}

static int lv_revert_finish(vmsnap_job *job, const vmsnap_job_info *info)
{
  lv_job j = {job, info->host, info, info->disk->target};
  return is_thin_job(&j) ? lv_thin_revert_finish(&j) : lv_classic_revert_finish(&j);
}

static int lv_revert_abort(vmsnap_job *job, const vmsnap_job_info *info)
{
  lv_job j = {job, info->host, info, info->disk->target};
  return is_thin_job(&j) ? lv_thin_revert_abort(&j) : 0;
}

/* size=: a classic snapshot's COW size (N[bskmgt] or N% of the origin). */
static const char *const lv_disk_options[] = {"size", NULL};

static const vmsnap_plugin lv_plugin = {
  .name = "lvm",
  .version = "1.0",
  .description = "LVM logical volume snapshots (lvm2 tools, libdevmapper status): thin "
                 "snapshots revert by branching, classic ones by merging",
  .available = lv_available,
  .probe = lv_probe,
  .capabilities = lv_capabilities,
  .prepare = lv_prepare,
  .create = lv_create,
  .remove = lv_remove,
  .revert = lv_revert,
  .revert_finish = lv_revert_finish,
  .revert_abort = lv_revert_abort,
  .list = lv_list,
  .disk_options = lv_disk_options,
};

VMSNAP_REGISTER_PLUGIN(lv_plugin)
