/* btrfs.c — the btrfs subvolume backend: a snapshot is a read-only btrfs
 * snapshot of the disk's subvolume, made, deleted and listed in-process
 * with libbtrfsutil; a revert swaps a writable snapshot of it into place
 * (RENAME_EXCHANGE), keeping every other snapshot. Layout and backend
 * data: btrfs.h; the two-phase revert: revert.c. */
#define _GNU_SOURCE
#include "btrfs.h"

#include <btrfsutil.h>
#include <stdio.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/vfs.h>

/* Above dd (10), which reflinks files on btrfs but cannot take a directory. */
#define BT_SCORE 60

static int bt_available(char *why, size_t whylen)
{
  /* The library is linked (RTLD_NOW): if we are loaded, it is usable. */
  if (!btrfs_util_strerror(BTRFS_UTIL_ERROR_NOT_BTRFS)) {
    snprintf(why, whylen, "libbtrfsutil does not answer: reinstall libbtrfsutil1");
    return 0;
  }
  if (bt_has_cap_sys_admin() || bt_any_user_rm_mount()) return 1;
  snprintf(why, whylen, "no CAP_SYS_ADMIN (run as root) and no btrfs mounted with "
           "user_subvol_rm_allowed: snapshots could be made but never deleted");
  return 0;
}

static int bt_probe(const vmsnap_disk *disk)
{
  struct stat st;
  if (!disk || !disk->source || disk->is_block_device || disk->live) return 0;
  if (disk->format && strcmp(disk->format, "raw") != 0) return 0;
  if (disk->mode && strcmp(disk->mode, "internal") != 0) return 0;
  /* A plain file on btrfs is dd's (a reflink copy); a subvolume is ours. A
   * plain directory on btrfs no backend takes: answer 1 so that prepare
   * says what to do (make it a subvolume). */
  if (stat(disk->source, &st) < 0 || !S_ISDIR(st.st_mode)) return 0;
  if (st.st_ino == BT_SUBVOL_INO && btrfs_util_is_subvolume(disk->source) == BTRFS_UTIL_OK)
    return BT_SCORE;
  struct statfs sf;
  return statfs(disk->source, &sf) == 0 && sf.f_type == BTRFS_SUPER_MAGIC ? 1 : 0;
}

static uint64_t bt_capabilities(const vmsnap_disk *disk)
{
  /* A btrfs snapshot is atomic (crash-consistent): no pause needed. */
  return VMSNAP_CAP_INTERNAL | VMSNAP_CAP_REVERT_KEEPS_NEWER | VMSNAP_CAP_DELETE_ANY |
         VMSNAP_CAP_LIST;
}

static int bt_prepare(vmsnap_job *job, const vmsnap_job_info *info)
{
  bt_job j = {job, info->host, info, info->disk->target};
  switch (info->kind) {
  case VMSNAP_JOB_CREATE: return bt_prepare_create(&j);
  case VMSNAP_JOB_REVERT: return bt_prepare_revert(&j);
  case VMSNAP_JOB_DELETE: return bt_prepare_delete(&j);
  default: return 0;
  }
}

static const vmsnap_plugin bt_plugin = {
  .name = "btrfs",
  .version = "1.0",
  .description = "btrfs subvolume snapshots (libbtrfsutil); revert swaps in a writable "
                 "snapshot and keeps newer ones",
  .available = bt_available,
  .probe = bt_probe,
  .capabilities = bt_capabilities,
  .prepare = bt_prepare,
  .create = bt_create,
  .remove = bt_remove,
  .revert = bt_revert,
  .revert_finish = bt_revert_finish,
  .revert_abort = bt_revert_abort,
  .list = bt_list,
};

VMSNAP_REGISTER_PLUGIN(bt_plugin)
