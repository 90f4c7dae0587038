/* revert.c — putting a copy back, in two phases.
 *
 * Regular-file disk: phase 1 (revert) builds a staging copy beside the disk
 * with the disk's mode, owner and xattrs; phase 2 (revert_finish) renames
 * it over the disk, atomic and restartable (no staging = already done);
 * revert_abort deletes the staging copy. The disk is untouched until the
 * rename, and the snapshot itself is never consumed.
 * Block-device disk: a device cannot be swapped by a rename, so phase 1
 * only checks and phase 2 writes the copy into the device in place:
 * restartable, and not cancellable once begun (half a device is worse).
 */
#define _GNU_SOURCE
#include "dd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The staging copy and its in-progress name, beside the disk. */
static int staging_paths(const vmsnap_job_info *info, const char *disk_path,
                         char *staging, char *part, size_t len)
{
  char suffix[128];

  snprintf(suffix, sizeof(suffix), ".vmsnap-revert-%s", info->snapshot_uuid);
  if (dd_hidden_sibling(disk_path, suffix, staging, len) < 0)
    return -ENAMETOOLONG;
  snprintf(suffix, sizeof(suffix), ".vmsnap-revert-%s.part", info->snapshot_uuid);
  return dd_hidden_sibling(disk_path, suffix, part, len);
}

static int check_device(const dd_job *j, const dd_disk *d, const char *snap,
                        const struct stat *sb)
{
  uint64_t dev_size = 0;
  int fd = open(d->path, O_WRONLY | O_EXCL | O_CLOEXEC);

  if (fd < 0) {
    int err = errno;
    return j->host->error(j->job, err == EBUSY ? VMSNAP_E_BUSY : VMSNAP_E_BACKEND,
                          "cannot open %s for writing: %s; %s", d->path, strerror(err),
                          err == EBUSY ? "it is mounted or held by another "
                                         "user: stop that first"
                                       : "check permissions");
  }
  int rc = dd_fd_size(fd, &dev_size);
  close(fd);
  if (rc == 0 && (uint64_t)sb->st_size > dev_size) {
    char need[32], have[32];
    vp_human_size((uint64_t)sb->st_size, need, sizeof(need));
    vp_human_size(dev_size, have, sizeof(have));
    return j->host->error(j->job, VMSNAP_E_NOSPC,
                          "the snapshot %s holds %s, the device %s "
                          "only %s; grow the device first",
                          snap, need, d->path, have);
  }
  return 0;
}

int dd_revert_check(const dd_job *j, const vmsnap_job_info *info,
                    const dd_disk *d, const char *snap)
{
  char dir[PATH_MAX];
  uint64_t needed, data, size;
  struct stat sb;
  int rc;

  if (!snap)
    return j->host->error(j->job, VMSNAP_E_NOT_FOUND,
                          "the snapshot records no dd copy to revert to");
  int err = stat(snap, &sb) < 0 ? errno : S_ISREG(sb.st_mode) ? 0 : EINVAL;
  if (err)
    return j->host->error(j->job, VMSNAP_E_NOT_FOUND,
                          "the snapshot's copy %s is unusable: %s; "
                          "this snapshot cannot be reverted to",
                          snap, err == EINVAL ? "not a regular file" : strerror(err));
  if (d->is_block)
    return check_device(j, d, snap, &sb);
  /* The staging copy needs room until the rename frees the old disk. */
  if ((rc = dd_parent_dir(d->path, dir, sizeof(dir))) < 0 ||
      (rc = dd_needed_bytes(j, snap, dir, &needed, &data, &size)) < 0)
    return rc;
  return dd_space_check(j, dir, needed);
}

int dd_revert(vmsnap_job *job, const vmsnap_job_info *info)
{
  dd_job j = {job, info->host};
  const char *snap = info->host->get(job, "file");
  char staging[PATH_MAX], part[PATH_MAX], what[PATH_MAX + 64];
  dd_copy_result res;
  dd_disk d;
  int rc;

  if ((rc = dd_need_uuid(&j, info)) < 0 ||
      (rc = dd_disk_resolve(&j, info->disk, &d)) < 0 ||
      (rc = dd_revert_check(&j, info, &d, snap)) < 0 || d.is_block)
    return rc;
  if (staging_paths(info, d.path, staging, part, sizeof(staging)) < 0)
    return j.host->error(job, VMSNAP_E_INVALID, "%s: path too long", d.path);
  /* Leftovers of an earlier attempt at this revert (uuid in the name). */
  unlink(part);
  unlink(staging);
  int xfd = open(d.path, O_RDONLY | O_CLOEXEC);
  dd_new_file nf = {
    .tmp_path = part, .path = staging, .mode = d.st.st_mode,
    .uid = d.st.st_uid, .gid = d.st.st_gid, .xattrs_from = xfd,
  };
  dd_copy_ops ops = dd_job_ops(&j, 1);
  snprintf(what, sizeof(what), "staging snapshot %s for disk %s (%s)", snap,
           info->disk->target, d.path);
  double t0 = dd_now();
  rc = dd_copy_new_file(snap, &nf, 0, &ops, &res);
  if (xfd >= 0)
    close(xfd);
  if (rc < 0)
    return dd_copy_failed(&j, rc, &res, what,
                          "the disk is unchanged; the staging copy needs room "
                          "beside the disk until the revert: free space there",
                          "the disk is unchanged; fix the cause (as root or "
                          "the disk's owner, if ownership failed) and retry");
  dd_copy_done(&j, what, &res, dd_now() - t0);
  return 0;
}

static int finish_device(const dd_job *j, const dd_disk *d, const char *snap)
{
  char what[PATH_MAX + 64];
  dd_copy_result res;
  int rc = 0, src = open(snap, O_RDONLY | O_CLOEXEC);
  int dst = src < 0 ? -1 : open(d->path, O_WRONLY | O_EXCL | O_CLOEXEC);

  snprintf(what, sizeof(what), "writing snapshot %s back into disk %s (%s)",
           snap, d->disk->target, d->path);
  if (src < 0 || dst < 0) {
    int err = errno;
    rc = j->host->error(j->job, err == EBUSY ? VMSNAP_E_BUSY : VMSNAP_E_BACKEND,
                        "%s: cannot open %s: %s; the device is unchanged; "
                        "fix this and run recover", what,
                        src < 0 ? snap : d->path, strerror(err));
  } else {
    dd_job jj = *j;
    dd_copy_ops ops = dd_job_ops(&jj, 0);
    double t0 = dd_now();
    rc = dd_copy_fd(src, snap, dst, d->path, 0, &ops, &res);
    if (rc < 0)
      rc = dd_copy_failed(j, rc, &res, what, "the device is smaller than "
                          "the snapshot: grow it and run recover",
                          "the device is partly rewritten: fix the cause and "
                          "run recover to finish the revert");
    else
      dd_copy_done(j, what, &res, dd_now() - t0);
  }
  if (src >= 0)
    close(src);
  if (dst >= 0)
    close(dst);
  return rc;
}

int dd_revert_finish(vmsnap_job *job, const vmsnap_job_info *info)
{
  dd_job j = {job, info->host};
  const char *snap = info->host->get(job, "file");
  char staging[PATH_MAX], part[PATH_MAX];
  dd_disk d;
  int rc;

  if ((rc = dd_need_uuid(&j, info)) < 0 ||
      (rc = dd_disk_resolve(&j, info->disk, &d)) < 0)
    return rc;
  if (d.is_block)
    return snap ? finish_device(&j, &d, snap)
                : dd_revert_check(&j, info, &d, snap);
  if (staging_paths(info, d.path, staging, part, sizeof(staging)) < 0)
    return j.host->error(job, VMSNAP_E_INVALID, "%s: path too long", d.path);
  /* No staging copy: a previous run already renamed it (restart after a
   * crash between rename and commit). */
  if (rename(staging, d.path) < 0 && errno != ENOENT) {
    int err = errno;
    return j.host->error(job, VMSNAP_E_BACKEND,
                         "cannot rename %s over %s: %s; the disk is "
                         "unchanged; fix this and run recover",
                         staging, d.path, strerror(err));
  }
  unlink(part);
  if ((rc = dd_fsync_parent(d.path)) < 0)
    return j.host->error(job, VMSNAP_E_BACKEND,
                         "flushing the directory of %s: %s; run "
                         "recover",
                         d.path, strerror(-rc));
  return 0;
}

int dd_revert_abort(vmsnap_job *job, const vmsnap_job_info *info)
{
  dd_job j = {job, info->host};
  char real[PATH_MAX], staging[PATH_MAX], part[PATH_MAX];
  struct stat sb;
  int rc;

  if ((rc = dd_need_uuid(&j, info)) < 0)
    return rc;

  /* Works even if the disk vanished meanwhile: only our files go. */
  const char *disk = realpath(info->disk->source, real) ? real : info->disk->source;
  if (stat(disk, &sb) == 0 && S_ISBLK(sb.st_mode))
    return 0; /* phase 1 made nothing */
  if (staging_paths(info, disk, staging, part, sizeof(staging)) < 0)
    return 0;
  unlink(part);
  unlink(staging);
  dd_fsync_parent(disk);
  return 0;
}
