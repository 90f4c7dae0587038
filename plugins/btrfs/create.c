/* create.c — making and removing a snapshot: a read-only btrfs snapshot of
 * the disk's subvolume, named from the snapshot name (the vmsnap mark). */
#define _GNU_SOURCE
#include "btrfs.h"

#include <btrfsutil.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char nothing[] = "nothing was changed";

/* Opens the disk's subvolume at live and fills sv; refuses what is not one. */
static int open_live(const bt_job *j, const char *live, bt_subvol *sv)
{
  int fd = bt_open_subvol(live, sv);
  if (fd == -EINVAL)
    return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                          "%s is not a btrfs subvolume; make it one (btrfs subvolume "
                          "create), or use a backend for files (dd); %s",
                          live, nothing);
  if (fd < 0)
    return bt_fail(j, bt_errno_code(-fd), -fd, "cannot open the subvolume %s; %s", live, nothing);
  return fd;
}

int bt_prepare_create(const bt_job *j)
{
  const vmsnap_job_info *info = j->info;
  char live[PATH_MAX], loc[PATH_MAX], snap[PATH_MAX], dir[PATH_MAX];
  bt_subvol sv;
  int rc, fd = -1, dfd = -1;

  if (!info->object_name || !*info->object_name || strchr(info->object_name, '/') ||
      strlen(info->object_name) > NAME_MAX)
    return j->host->error(j->job, VMSNAP_E_INVALID, "unusable object name \"%s\"",
                          info->object_name ? info->object_name : "");
  if ((rc = bt_live_path(j, live, sizeof live)) < 0 ||
      (rc = bt_location(j, live, loc, sizeof loc)) < 0)
    return rc;
  if (bt_join(snap, sizeof snap, loc, info->object_name) < 0)
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "the path of the snapshot in %s is "
                          "too long; %s",
                          loc, nothing);
  if ((fd = rc = open_live(j, live, &sv)) < 0) goto out;
  if ((rc = bt_check_writable(j, fd, live, nothing)) < 0 ||
      (rc = bt_check_nested(j, fd, live, "a snapshot")) < 0 ||
      (rc = bt_check_space(j, fd, live, "a snapshot")) < 0 ||
      (rc = bt_check_can_delete(j, fd, live)) < 0)
    goto out;
  struct stat st;
  if (lstat(snap, &st) == 0) {
    rc = j->host->error(j->job, VMSNAP_E_EXISTS,
                        "%s exists and was not made by this snapshot; vmsnap never "
                        "replaces it: move it away, or choose another snapshot name; %s",
                        snap, nothing);
    goto out;
  }
  /* file=DIR must exist on the same btrfs: a snapshot cannot leave its
   * filesystem. The default location is made by create, beside the disk. */
  if (info->disk->file) {
    if ((dfd = open(loc, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
      rc = bt_fail(j, VMSNAP_E_NOT_FOUND, errno,
                   "file=%s is not a usable directory; "
                   "create it on the btrfs that holds %s; %s",
                   loc, live, nothing);
      goto out;
    }
    if (bt_same_fs(fd, dfd) != 1) {
      rc = j->host->error(j->job, VMSNAP_E_INVALID,
                          "file=%s is not on the btrfs that holds %s; a btrfs "
                          "snapshot stays on its filesystem: choose a directory there; %s",
                          loc, live, nothing);
      goto out;
    }
  } else if (bt_parent_dir(live, dir, sizeof dir) == 0 && access(dir, W_OK) < 0) {
    rc = bt_fail(j, VMSNAP_E_UNSUPPORTED, errno,
                 "cannot write beside %s in %s; "
                 "give the disk file=DIR on the same btrfs; %s",
                 live, dir, nothing);
    goto out;
  }
  if ((rc = j->host->set(j->job, "subvol", snap)) < 0 ||
      (rc = bt_set_u64(j, "source-id", sv.id)) < 0 ||
      (rc = j->host->set(j->job, "source-uuid", sv.uuid)) < 0)
    goto out;
  rc = 0;
out:
  if (fd >= 0) close(fd);
  if (dfd >= 0) close(dfd);
  return rc;
}

/* A delete is journaled after its prepare and must then complete: refuse
 * here what would make remove fail. A missing snapshot is no reason. */
int bt_prepare_delete(const bt_job *j)
{
  const char *snap = j->host->get(j->job, "subvol");
  char dir[PATH_MAX];
  if (!snap || bt_parent_dir(snap, dir, sizeof dir) < 0) return 0;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return 0;
  int rc = bt_check_writable(j, fd, snap, nothing);
  if (!rc) rc = bt_check_can_delete(j, fd, snap);
  close(fd);
  return rc;
}

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Starts and waits for the write-back of the files at the top of the
 * subvolume (a VM's image directory: its images), reporting progress per
 * file. The snapshot ioctl itself writes back all of the subvolume's dirty
 * data before it snapshots (btrfs flushes the source's delalloc and waits
 * for it), so this only moves that wait in front of the snapshot where it
 * can be shown and cancelled; deeper files are left to the ioctl. It never
 * commits a transaction: a syncfs did, costing 1–2 ms whenever anything on
 * the filesystem was dirty, on top of the commit the snapshot makes.
 * Returns the op's progress steps (the files, then the snapshot) or a
 * negative code. */
#define WRITE_BACK_MAX 256
static int write_back(const bt_job *j, int srcfd, const char *live)
{
  int dfd = openat(srcfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOATIME);
  if (dfd < 0) dfd = openat(srcfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *dir = dfd >= 0 ? fdopendir(dfd) : NULL;
  if (!dir) {
    int e = errno;
    if (dfd >= 0) close(dfd);
    return bt_fail(j, VMSNAP_E_IO, e, "cannot list %s to flush it; %s", live, nothing);
  }
  int files[WRITE_BACK_MAX], n = 0, rc = 0;
  struct dirent *de;
  while (n < WRITE_BACK_MAX && (de = readdir(dir))) {
    if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN) continue;
    int fd = openat(dirfd(dir), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOATIME);
    if (fd < 0 && errno == EPERM)
      fd = openat(dirfd(dir), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
      close(fd);
      fd = -1;
    }
    if (fd >= 0) files[n++] = fd;
  }
  closedir(dir);
  /* All started first, then each waited for: the device sees them together. */
  for (int i = 0; i < n; i++) sync_file_range(files[i], 0, 0, SYNC_FILE_RANGE_WRITE);
  j->host->progress(j->job, 0, (uint64_t)n + 1);
  for (int i = 0; i < n; i++) {
    if (!rc && sync_file_range(files[i], 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE |
                                                   SYNC_FILE_RANGE_WRITE |
                                                   SYNC_FILE_RANGE_WAIT_AFTER) < 0)
      rc = bt_fail(j, VMSNAP_E_IO, errno,
                   "flushing %s failed; the disk's last writes may not be on storage; "
                   "check dmesg; %s", live, nothing);
    close(files[i]);
    if (!rc) j->host->progress(j->job, (uint64_t)i + 1, (uint64_t)n + 1);
  }
  return rc < 0 ? rc : n + 1;
}

/* Makes the snapshot, then reads back what it is. Returns 0 or a code. */
static int snapshot_into(const bt_job *j, int srcfd, int locfd, const char *live,
                         const char *snap)
{
  const char *name = bt_base_name(snap);
  enum btrfs_util_error e = btrfs_util_create_snapshot_fd2(
      srcfd, locfd, name, BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY, NULL, NULL);
  if (e) {
    int err = errno;
    /* Nothing is made when the ioctl fails; be sure no half remains. */
    bt_subvol leftover;
    int lfd = bt_open_subvol_at(locfd, name, &leftover);
    if (lfd >= 0) {
      close(lfd);
      if (bt_is_ours(j, &leftover)) btrfs_util_delete_subvolume_fd(locfd, name, 0);
    }
    return j->host->error(j->job, bt_errno_code(err),
                          "cannot snapshot %s into %s: %s (%s); %s; nothing was "
                          "left behind",
                          live, snap, strerror(err), btrfs_util_strerror(e),
                          err == ENOSPC || err == EDQUOT
                              ? "the btrfs is full: free some space (a deleted snapshot's "
                                "space comes back once the btrfs cleaner ran)"
                          : err == EEXIST ? "move the existing entry away"
                                          : "check the filesystem (dmesg)");
  }
  bt_subvol sv;
  int fd = bt_open_subvol_at(locfd, name, &sv);
  if (fd < 0)
    return bt_fail(j, VMSNAP_E_BACKEND, -fd,
                   "the new snapshot %s cannot be read "
                   "back; run snapctl recover",
                   snap);
  close(fd);
  int rc = bt_set_u64(j, "subvol-id", sv.id);
  if (!rc) rc = j->host->set(j->job, "subvol-uuid", sv.uuid);
  return rc;
}

int bt_create(vmsnap_job *job, const vmsnap_job_info *info)
{
  bt_job j = {job, info->host, info, info->disk->target};
  const char *snap = info->host->get(job, "subvol");
  char live[PATH_MAX], loc[PATH_MAX];
  bt_subvol sv;
  int rc, srcfd = -1, locfd = -1;

  if (!snap)
    return info->host->error(job, VMSNAP_E_INVALID,
                             "no snapshot path was recorded; "
                             "prepare must run before create");
  if ((rc = bt_live_path(&j, live, sizeof live)) < 0) return rc;
  if ((srcfd = rc = open_live(&j, live, &sv)) < 0) return rc;
  const char *src_uuid = info->host->get(job, "source-uuid");
  if (src_uuid && strcmp(src_uuid, sv.uuid) != 0) {
    rc = info->host->error(job, VMSNAP_E_BUSY,
                           "%s was replaced by another subvolume "
                           "since the snapshot was prepared; try again",
                           live);
    goto out;
  }
  /* Write back first, with progress: after large writes that is most of
   * the time the snapshot takes. */
  info->host->log(job, VMSNAP_LOG_INFO, "flushing %s", live);
  double t0 = now_ms();
  int steps = rc = write_back(&j, srcfd, live);
  if (rc < 0) goto out;
  double t1 = now_ms();
  if (info->host->cancelled(job)) {
    rc = info->host->error(job, VMSNAP_E_CANCELLED,
                           "cancelled after flushing; nothing "
                           "was made");
    goto out;
  }
  if (bt_parent_dir(snap, loc, sizeof loc) < 0) {
    rc = info->host->error(job, VMSNAP_E_INVALID, "the snapshot path %s is too long", snap);
    goto out;
  }
  if ((locfd = rc = bt_open_location(&j, live, loc)) < 0) goto out;
  rc = snapshot_into(&j, srcfd, locfd, live, snap);
  if (rc < 0) {
    bt_rmdir_location(&j, snap);
    goto out;
  }
  info->host->progress(job, (uint64_t)steps, (uint64_t)steps);
  info->host->log(job, VMSNAP_LOG_INFO, "snapshot %s: flush %.1f ms, snapshot %.1f ms", snap,
                  t1 - t0, now_ms() - t1);
out:
  if (srcfd >= 0) close(srcfd);
  if (locfd >= 0) close(locfd);
  return rc;
}

int bt_remove(vmsnap_job *job, const vmsnap_job_info *info)
{
  bt_job j = {job, info->host, info, info->disk->target};
  const char *snap = info->host->get(job, "subvol");
  char dir[PATH_MAX];
  bt_subvol sv;

  /* Nothing recorded: prepare never got that far, nothing was made. */
  if (!snap || bt_parent_dir(snap, dir, sizeof dir) < 0) return 0;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 && errno == ENOENT) return 0;
  if (dfd < 0)
    return bt_fail(&j, VMSNAP_E_BACKEND, errno,
                   "cannot open %s to delete the "
                   "snapshot %s; fix its permissions and run the delete again",
                   dir, snap);
  int rc = 0, fd = bt_open_subvol_at(dfd, bt_base_name(snap), &sv);
  if (fd == -ENOENT) goto gone;
  if (fd == -EINVAL || (fd >= 0 && !bt_is_ours(&j, &sv))) {
    info->host->warn(job, "left %s in place: it is not the subvolume this snapshot made; "
                     "delete it yourself if it is not needed", snap);
    goto gone;
  }
  if (fd < 0) {
    rc = bt_fail(&j, VMSNAP_E_BACKEND, -fd,
                 "cannot open the snapshot %s; fix this "
                 "and run the delete again",
                 snap);
    goto out;
  }
  close(fd);
  if ((rc = bt_delete_at(&j, dfd, bt_base_name(snap), snap)) < 0) goto out;
  if (info->kind == VMSNAP_JOB_DELETE)
    info->host->warn(job, "deleted %s; btrfs frees its space in the background (the "
                     "cleaner), so free space grows over the next seconds", snap);
gone:
  bt_rmdir_location(&j, snap);
out:
  close(dfd);
  return rc;
}
