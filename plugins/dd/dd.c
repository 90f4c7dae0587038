/* dd.c — the raw full-copy backend: a snapshot is a copy of the disk in a
 * file (a reflink where the filesystem shares extents, else a hole-aware
 * copy). It takes any raw file or block device and is the fallback when no
 * better backend does (probe score 10). Layout and backend data: dd.h. */
#define _GNU_SOURCE
#include "dd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DD_SCORE 10

static int dd_available(char *why, size_t whylen)
{
  return 1; /* needs nothing but the kernel */
}

static int dd_probe(const vmsnap_disk *disk)
{
  struct stat sb;

  if (!disk || !disk->format || strcmp(disk->format, "raw") != 0)
    return 0;
  if (stat(disk->source, &sb) < 0)
    return 0;
  return S_ISREG(sb.st_mode) || S_ISBLK(sb.st_mode) ? DD_SCORE : 0;
}

/* Whether a snapshot of disk could be a reflink: source and destination
 * directory on one filesystem that clones. */
static int can_reflink(const vmsnap_disk *disk)
{
  char real[PATH_MAX], dir[PATH_MAX];
  struct stat src, dst;

  if (!realpath(disk->source, real) || stat(real, &src) < 0 || !S_ISREG(src.st_mode))
    return 0;
  if (dd_parent_dir(disk->file ? disk->file : real, dir, sizeof(dir)) < 0 ||
      stat(dir, &dst) < 0 || dst.st_dev != src.st_dev)
    return 0;
  return dd_reflink_works(dir);
}

static uint64_t dd_capabilities(const vmsnap_disk *disk)
{
  /* NEEDS_PAUSE: a copy made while the guest writes is torn, not even
   * crash-consistent (there is no QMP action for a file copy). */
  uint64_t caps = VMSNAP_CAP_INTERNAL | VMSNAP_CAP_NEEDS_PAUSE |
                  VMSNAP_CAP_REVERT_KEEPS_NEWER | VMSNAP_CAP_DELETE_ANY |
                  VMSNAP_CAP_LIST | VMSNAP_CAP_PROGRESS | VMSNAP_CAP_CANCEL |
                  VMSNAP_CAP_BLOCK_DEVICE;

  /* No disk: what the backend can do at best. */
  if (!disk || can_reflink(disk))
    caps |= VMSNAP_CAP_REFLINK;
  return caps;
}

static int set_number(const dd_job *j, const char *key, uint64_t value)
{
  char text[32];
  snprintf(text, sizeof(text), "%" PRIu64, value);
  return j->host->set(j->job, key, text);
}

static int prepare_create(const dd_job *j, const vmsnap_job_info *info)
{
  char path[PATH_MAX], dir[PATH_MAX];
  uint64_t needed, data, size;
  struct stat sb;
  dd_disk d;
  int rc;

  if ((rc = dd_disk_resolve(j, info->disk, &d)) < 0 ||
      (rc = dd_snapshot_path(j, info, &d, path, sizeof(path))) < 0)
    return rc;
  if (lstat(path, &sb) == 0)
    return j->host->error(j->job, VMSNAP_E_EXISTS,
                          "%s exists and was not made by this "
                          "snapshot; vmsnap never overwrites it: move it away, "
                          "or choose another snapshot name or file=",
                          path);
  if (errno != ENOENT) {
    int err = errno;
    return j->host->error(j->job, VMSNAP_E_BACKEND,
                          "cannot check %s: %s; check the permissions "
                          "of its directory",
                          path, strerror(err));
  }
  /* The default directory may not exist yet; its parent, the disk's
   * directory, is on the same filesystem. */
  dd_parent_dir(info->disk->file ? path : d.path, dir, sizeof(dir));
  if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode))
    return j->host->error(j->job, VMSNAP_E_NOT_FOUND,
                          "directory %s for the snapshot does not "
                          "exist; create it or choose another file=",
                          dir);
  if ((rc = dd_needed_bytes(j, d.path, dir, &needed, &data, &size)) < 0 ||
      (rc = dd_space_check(j, dir, needed)) < 0)
    return rc;
  if ((rc = j->host->set(j->job, "file", path)) < 0 ||
      (rc = set_number(j, "size", data)) < 0 ||
      (rc = set_number(j, "source-size", size)) < 0)
    return rc;
  return 0;
}

static int dd_prepare(vmsnap_job *job, const vmsnap_job_info *info)
{
  dd_job j = {job, info->host};
  dd_disk d;
  int rc;

  if ((info->kind == VMSNAP_JOB_CREATE || info->kind == VMSNAP_JOB_REVERT) &&
      (rc = dd_need_uuid(&j, info)) < 0)
    return rc;
  switch (info->kind) {
  case VMSNAP_JOB_CREATE:
    return prepare_create(&j, info);
  case VMSNAP_JOB_REVERT:
    if ((rc = dd_disk_resolve(&j, info->disk, &d)) < 0)
      return rc;
    return dd_revert_check(&j, info, &d, info->host->get(job, "file"));
  default:
    return 0;
  }
}

static int dd_create(vmsnap_job *job, const vmsnap_job_info *info)
{
  dd_job j = {job, info->host};
  const char *file = info->host->get(job, "file");
  char tmp[PATH_MAX], suffix[128], what[PATH_MAX + 64];
  dd_copy_result res;
  dd_disk d;
  int rc;

  if (!file)
    return j.host->error(job, VMSNAP_E_INVALID,
                         "no snapshot file was recorded; prepare "
                         "must run before create");
  if ((rc = dd_need_uuid(&j, info)) < 0 ||
      (rc = dd_disk_resolve(&j, info->disk, &d)) < 0 ||
      (!info->disk->file && (rc = dd_make_default_dir(&j, &d)) < 0))
    return rc;
  snprintf(suffix, sizeof(suffix), ".part-%s", info->snapshot_uuid);
  if (dd_hidden_sibling(file, suffix, tmp, sizeof(tmp)) < 0)
    return j.host->error(job, VMSNAP_E_INVALID, "%s: path too long", file);
  /* A leftover of a crashed attempt at this very snapshot (the uuid is
   * in its name): ours to replace. */
  unlink(tmp);
  dd_new_file nf = {
    .tmp_path = tmp, .path = file, .mode = 0600, .uid = (uid_t)-1,
    .gid = (gid_t)-1, .xattrs_from = -1, .mark_name = DD_MARK_XATTR,
    .mark_value = info->snapshot_uuid,
  };
  dd_copy_ops ops = dd_job_ops(&j, 1);
  snprintf(what, sizeof(what), "snapshot of disk %s (%s) into %s",
           info->disk->target, d.path, file);
  double t0 = dd_now();
  rc = dd_copy_new_file(d.path, &nf, 0, &ops, &res);
  if (rc < 0 && !info->disk->file) {
    char dir[PATH_MAX];
    /* Nothing of this snapshot is left: neither is our directory when it
     * holds nothing else (rmdir fails otherwise). */
    if (dd_parent_dir(file, dir, sizeof(dir)) == 0)
      rmdir(dir);
  }
  if (rc < 0)
    return dd_copy_failed(&j, rc, &res, what,
                          "free space there or put the copy on another "
                          "filesystem with ,file=PATH",
                          "check the disk and the destination, then retry");
  dd_copy_done(&j, what, &res, dd_now() - t0);
  return 0;
}

static int dd_remove(vmsnap_job *job, const vmsnap_job_info *info)
{
  dd_job j = {job, info->host};
  const char *file = info->host->get(job, "file");
  char tmp[PATH_MAX], suffix[128], dir[PATH_MAX], def[PATH_MAX];
  dd_disk d;
  int rc;

  /* Nothing recorded: prepare never got that far, nothing was made. */
  if (!file)
    return 0;
  if ((rc = dd_need_uuid(&j, info)) < 0)
    return rc;
  /* A partial copy of an interrupted create: the uuid in its name makes
   * it ours even if the crash came before its mark was set. */
  snprintf(suffix, sizeof(suffix), ".part-%s", info->snapshot_uuid);
  if (dd_hidden_sibling(file, suffix, tmp, sizeof(tmp)) == 0 &&
      unlink(tmp) < 0 && errno != ENOENT) {
    int err = errno;
    return j.host->error(job, VMSNAP_E_BACKEND,
                         "cannot delete the partial copy %s: %s; check its "
                         "permissions and run the delete again", tmp,
                         strerror(err));
  }
  if ((rc = dd_remove_ours(&j, file, info->snapshot_uuid)) < 0)
    return rc;
  dd_fsync_parent(file);
  /* Our per-disk directory goes when empty; .vmsnap itself stays, as
   * another disk's create may be about to use it. */
  if (dd_parent_dir(file, dir, sizeof(dir)) == 0 &&
      realpath(info->disk->source, d.path) && dd_default_dir(&d, def, sizeof(def)) == 0 &&
      strcmp(dir, def) == 0)
    rmdir(dir);
  return 0;
}

static void list_one(const dd_job *j, int dirfd, const char *dir,
                     const char *name)
{
  size_t len = strlen(name), plen = strlen(DD_MARK_PREFIX), slen = strlen(DD_SUFFIX);
  char path[PATH_MAX];
  struct statx sx;

  if (len <= plen + slen || strncmp(name, DD_MARK_PREFIX, plen) != 0 ||
      strcmp(name + len - slen, DD_SUFFIX) != 0)
    return;
  if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, &sx) < 0 ||
      !S_ISREG(sx.stx_mode))
    return;
  int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= sizeof(path))
    return;
  vmsnap_list_entry e = {
    .struct_size = sizeof(e),
    .object = path,
    .snapshot_name = NULL, /* decoding the core's mark is the core's job */
    /* Birth time is when the copy was made; ctime moves with chmod. */
    .ctime_sec = (sx.stx_mask & STATX_BTIME) ? sx.stx_btime.tv_sec : sx.stx_ctime.tv_sec,
    .size = sx.stx_blocks * 512,
  };
  j->host->list_entry(j->job, &e);
}

static int dd_list(vmsnap_job *job, const vmsnap_job_info *info)
{
  dd_job j = {job, info->host};
  char dir[PATH_MAX];
  struct dirent *de;
  dd_disk d;
  int rc;

  if ((rc = dd_disk_resolve(&j, info->disk, &d)) < 0)
    return rc;
  /* A block device's copies live wherever file= said: nothing to scan. */
  if (d.is_block || dd_default_dir(&d, dir, sizeof(dir)) < 0)
    return 0;
  DIR *dh = opendir(dir);
  if (!dh) {
    int err = errno;
    if (err == ENOENT)
      return 0;
    return j.host->error(job, VMSNAP_E_BACKEND, "cannot read %s: %s; check its permissions", dir,
                         strerror(err));
  }
  while ((de = readdir(dh)) != NULL)
    list_one(&j, dirfd(dh), dir, de->d_name);
  closedir(dh);
  return 0;
}

static const vmsnap_plugin dd_plugin = {
  .name = "dd",
  .version = "1.0",
  .description = "raw full copy into a file (reflink where the filesystem "
                 "can); takes any raw file or block device",
  .available = dd_available,
  .probe = dd_probe,
  .capabilities = dd_capabilities,
  .prepare = dd_prepare,
  .create = dd_create,
  .remove = dd_remove,
  .revert = dd_revert,
  .revert_finish = dd_revert_finish,
  .revert_abort = dd_revert_abort,
  .list = dd_list,
};

VMSNAP_REGISTER_PLUGIN(dd_plugin)
