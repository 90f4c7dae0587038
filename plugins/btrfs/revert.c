/* revert.c — putting a snapshot back, in two phases.
 *
 * Phase one (revert) makes a writable snapshot of the chosen snapshot in
 * the live subvolume's own directory (RENAME_EXCHANGE works only within
 * one parent: EXDEV otherwise). Phase two (revert_finish) swaps the two
 * with renameat2(RENAME_EXCHANGE), atomically, and deletes the old live
 * subvolume, now under the staging name (its space is freed later by the
 * btrfs cleaner). The snapshot reverted to and every other snapshot stay
 * as they are, so newer snapshots survive. revert_abort deletes the staged
 * copy. Every step is recognised by subvolume uuids, so revert_finish and
 * revert_abort can be run again after a crash at any point. The disk's
 * subvolume gets a new id: recorded as "live-id"/"live-uuid".
 */
#define _GNU_SOURCE
#include "btrfs.h"

#include <btrfsutil.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char nothing[] = "nothing was changed";

/* The recorded snapshot, opened and checked to be ours. */
static int open_snapshot(const bt_job *j, bt_subvol *sv)
{
  const char *snap = j->host->get(j->job, "subvol");
  if (!snap)
    return j->host->error(j->job, VMSNAP_E_NOT_FOUND,
                          "the snapshot records no btrfs "
                          "subvolume to revert to; %s",
                          nothing);
  int fd = bt_open_subvol(snap, sv);
  if (fd < 0 || !bt_is_ours(j, sv)) {
    if (fd >= 0) close(fd);
    return j->host->error(j->job, VMSNAP_E_NOT_FOUND,
                          "the snapshot's subvolume %s is %s; this snapshot cannot be "
                          "reverted to (delete it); %s",
                          snap,
                          fd == -ENOENT ? "gone"
                          : fd < 0      ? "unusable"
                                        : "another subvolume now",
                          nothing);
  }
  return fd;
}

static int check_live(const bt_job *j, int fd, const bt_subvol *sv, const char *live)
{
  char where[PATH_MAX];
  int rc;

  if (bt_mounted_at(fd, sv->id, where, sizeof where))
    return j->host->error(j->job, VMSNAP_E_BUSY,
                          "the subvolume %s (id %" PRIu64 ") is mounted at %s; a mounted "
                          "subvolume cannot be swapped (EBUSY); unmount %s, run the revert, and "
                          "mount it again (a subvol=PATH mount then finds the reverted subvolume; "
                          "a subvolid= mount must use the new id shown by snapctl info); %s",
                          live, sv->id, where, where, nothing);
  uint64_t def = 0;
  if (btrfs_util_get_default_subvolume_fd(fd, &def) == BTRFS_UTIL_OK && def == sv->id)
    return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                          "%s is the filesystem's default subvolume, which btrfs will "
                          "not delete after the swap; set another default (btrfs subvolume "
                          "set-default) first; %s",
                          live, nothing);
  if ((rc = bt_check_writable(j, fd, live, nothing)) < 0 ||
      (rc = bt_check_nested(j, fd, live, "the revert (which replaces the subvolume)")) < 0 ||
      (rc = bt_check_space(j, fd, live, "the revert's writable snapshot")) < 0 ||
      (rc = bt_check_can_delete(j, fd, live)) < 0 ||
      (rc = bt_check_open_files(j, sv, live)) < 0)
    return rc;
  return 0;
}

static int need_uuid(const bt_job *j)
{
  const char *u = j->info->snapshot_uuid;
  if (u && *u && !strchr(u, '/')) return 0;
  return j->host->error(j->job, VMSNAP_E_INVALID,
                        "the job has no usable snapshot "
                        "uuid (a bug in the caller of the btrfs plugin)");
}

int bt_prepare_revert(const bt_job *j)
{
  char live[PATH_MAX], staged[PATH_MAX];
  bt_subvol snap, lv, st;
  int rc, sfd = -1, lfd = -1;

  if (j->info->disk->live)
    return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                          "a running QEMU serves it; "
                          "shut the guest down first; %s",
                          nothing);
  if ((rc = need_uuid(j)) < 0 || (rc = bt_live_path(j, live, sizeof live)) < 0) return rc;
  if ((sfd = rc = open_snapshot(j, &snap)) < 0) return rc;
  lfd = bt_open_subvol(live, &lv);
  if (lfd < 0) {
    rc = lfd == -EINVAL ? j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                                         "%s is not a btrfs "
                                         "subvolume (any more); %s",
                                         live, nothing)
                        : bt_fail(j, bt_errno_code(-lfd), -lfd,
                                  "cannot open the subvolume %s; "
                                  "%s",
                                  live, nothing);
    goto out;
  }
  if (bt_same_fs(sfd, lfd) != 1) {
    rc = j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                        "the snapshot %s is not on the "
                        "btrfs that holds %s; %s",
                        j->host->get(j->job, "subvol"), live, nothing);
    goto out;
  }
  if ((rc = check_live(j, lfd, &lv, live)) < 0) goto out;
  if (bt_staged_path(live, j->info->snapshot_uuid, staged, sizeof staged) < 0) {
    rc = j->host->error(j->job, VMSNAP_E_INVALID, "path too long: %s", live);
    goto out;
  }
  /* A leftover of this very revert (its uuid is in the name, it is a
   * snapshot of the snapshot) is replaced by revert; anything else is not
   * ours. */
  int tfd = bt_open_subvol(staged, &st);
  if (tfd >= 0) close(tfd);
  if (tfd != -ENOENT && (tfd < 0 || strcmp(st.parent_uuid, snap.uuid) != 0)) {
    rc = j->host->error(j->job, VMSNAP_E_EXISTS,
                        "%s exists and was not made by "
                        "vmsnap; move it away; %s",
                        staged, nothing);
    goto out;
  }
  if ((rc = j->host->set(j->job, "revert-staged", staged)) < 0 ||
      (rc = bt_set_u64(j, "revert-old-id", lv.id)) < 0 ||
      (rc = j->host->set(j->job, "revert-old-uuid", lv.uuid)) < 0)
    goto out;
  rc = 0;
out:
  if (sfd >= 0) close(sfd);
  if (lfd >= 0) close(lfd);
  return rc;
}

/* Deletes the staging subvolume if it is our copy of the snapshot (never
 * the old live subvolume, never someone else's). */
static int drop_staged(const bt_job *j, const char *staged, const char *snap_uuid)
{
  char dir[PATH_MAX];
  bt_subvol st;
  if (bt_parent_dir(staged, dir, sizeof dir) < 0) return 0;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return 0;
  int rc = 0, fd = bt_open_subvol_at(dfd, bt_base_name(staged), &st);
  const char *old = j->host->get(j->job, "revert-old-uuid");
  if (fd >= 0) {
    close(fd);
    if (snap_uuid && strcmp(st.parent_uuid, snap_uuid) == 0 && !(old && !strcmp(old, st.uuid)))
      rc = bt_delete_at(j, dfd, bt_base_name(staged), staged);
  }
  close(dfd);
  return rc;
}

int bt_revert(vmsnap_job *job, const vmsnap_job_info *info)
{
  bt_job j = {job, info->host, info, info->disk->target};
  const char *staged = info->host->get(job, "revert-staged");
  char dir[PATH_MAX];
  bt_subvol snap, st;
  int rc, sfd, dfd = -1;

  if (!staged || bt_parent_dir(staged, dir, sizeof dir) < 0)
    return info->host->error(job, VMSNAP_E_INVALID,
                             "no staging path was recorded; "
                             "prepare must run before revert");
  if ((sfd = rc = open_snapshot(&j, &snap)) < 0) return rc;
  if ((rc = drop_staged(&j, staged, snap.uuid)) < 0) goto out;
  if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
    rc = bt_fail(&j, VMSNAP_E_BACKEND, errno, "cannot open %s; %s", dir, nothing);
    goto out;
  }
  info->host->progress(job, 0, 1);
  enum btrfs_util_error e =
      btrfs_util_create_snapshot_fd2(sfd, dfd, bt_base_name(staged), 0, NULL, NULL);
  if (e) {
    int err = errno;
    rc = info->host->error(
        job, bt_errno_code(err),
        "cannot make the writable copy %s "
        "of %s: %s (%s); the disk is unchanged; %s",
        staged, info->host->get(job, "subvol"), strerror(err), btrfs_util_strerror(e),
        err == ENOSPC ? "free some space and try again" : "check the filesystem (dmesg)");
    goto out;
  }
  int fd = bt_open_subvol_at(dfd, bt_base_name(staged), &st);
  if (fd < 0) {
    rc = bt_fail(&j, VMSNAP_E_BACKEND, -fd,
                 "the writable copy %s cannot be read back; "
                 "the disk is unchanged",
                 staged);
    drop_staged(&j, staged, snap.uuid);
    goto out;
  }
  close(fd);
  if ((rc = bt_set_u64(&j, "revert-staged-id", st.id)) < 0 ||
      (rc = info->host->set(job, "revert-staged-uuid", st.uuid)) < 0) {
    drop_staged(&j, staged, snap.uuid);
    goto out;
  }
  info->host->progress(job, 1, 1);
  rc = 0;
out:
  close(sfd);
  if (dfd >= 0) close(dfd);
  return rc;
}

/* Which subvolume is at name in dirfd: fills uuid ("" if none); -errno. */
static int uuid_at(int dirfd, const char *name, bt_subvol *sv)
{
  int fd = bt_open_subvol_at(dirfd, name, sv);
  if (fd == -ENOENT) {
    sv->uuid[0] = '\0';
    return 0;
  }
  if (fd < 0) return fd;
  close(fd);
  return 0;
}

int bt_revert_finish(vmsnap_job *job, const vmsnap_job_info *info)
{
  bt_job j = {job, info->host, info, info->disk->target};
  const char *staged = info->host->get(job, "revert-staged");
  const char *old = info->host->get(job, "revert-old-uuid");
  const char *neu = info->host->get(job, "revert-staged-uuid");
  char live[PATH_MAX], dir[PATH_MAX];
  bt_subvol lv, st;
  int rc;

  if (!staged || !old || !neu)
    return info->host->error(job, VMSNAP_E_INVALID,
                             "the revert's staging was not "
                             "recorded; run snapctl recover");
  if ((rc = bt_live_path(&j, live, sizeof live)) < 0) return rc;
  if (bt_parent_dir(live, dir, sizeof dir) < 0) return VMSNAP_E_INVALID;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return bt_fail(&j, VMSNAP_E_BACKEND, errno,
                   "cannot open %s; fix this and run "
                   "snapctl recover",
                   dir);
  const char *ln = bt_base_name(live), *sn = bt_base_name(staged);
  if ((rc = uuid_at(dfd, ln, &lv)) < 0 || (rc = uuid_at(dfd, sn, &st)) < 0) {
    rc = bt_fail(&j, VMSNAP_E_BACKEND, -rc,
                 "cannot read %s or %s; fix this and run "
                 "snapctl recover",
                 live, staged);
    goto out;
  }
  /* Not swapped yet: the old subvolume is live, our copy staged. */
  if (!strcmp(lv.uuid, old) && !strcmp(st.uuid, neu)) {
    if (renameat2(dfd, sn, dfd, ln, RENAME_EXCHANGE) < 0) {
      int err = errno;
      rc = info->host->error(job, bt_errno_code(err),
                             "cannot swap %s into place of "
                             "%s: %s; %s",
                             staged, live, strerror(err),
                             err == EBUSY ? "the subvolume is a mount point: unmount it and "
                                            "run snapctl recover"
                                          : "fix this and run snapctl recover");
      goto out;
    }
    fsync(dfd);
    lv = st;
    if ((rc = uuid_at(dfd, sn, &st)) < 0) st.uuid[0] = '\0';
  }
  if (strcmp(lv.uuid, neu) != 0) {
    rc = info->host->error(job, VMSNAP_E_BACKEND,
                           "%s is neither the subvolume it was "
                           "nor the reverted copy (uuid %s); it was changed behind vmsnap's "
                           "back; check it and run snapctl recover",
                           live, lv.uuid[0] ? lv.uuid : "none");
    goto out;
  }
  /* Swapped: the old live subvolume is under the staging name. */
  if (!strcmp(st.uuid, old)) {
    if ((rc = bt_delete_at(&j, dfd, sn, staged)) < 0) goto out;
    info->host->warn(job, "the disk's previous state (%s) was deleted; btrfs frees its space in "
                     "the background (the cleaner)", live);
  }
  if ((rc = bt_set_u64(&j, "live-id", lv.id)) < 0 ||
      (rc = info->host->set(job, "live-uuid", lv.uuid)) < 0)
    goto out;
  rc = 0;
out:
  close(dfd);
  return rc;
}

int bt_revert_abort(vmsnap_job *job, const vmsnap_job_info *info)
{
  bt_job j = {job, info->host, info, info->disk->target};
  const char *staged = info->host->get(job, "revert-staged");
  const char *snap_uuid = info->host->get(job, "subvol-uuid");
  if (!staged) return 0; /* prepare never decided it: nothing was made */
  return drop_staged(&j, staged, snap_uuid);
}
