/* space.c — will a copy fit? Asked in prepare, before anything is made,
 * so a snapshot fails in a second rather than after copying for an hour. */
#define _GNU_SOURCE
#include "dd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* The mount point holding dir: the last ancestor on the same device. Good
 * enough to name the filesystem in a message. */
static void mount_point(const char *dir, char *buf, size_t len)
{
  struct stat here, up;
  char path[PATH_MAX];

  snprintf(path, sizeof(path), "%s", dir);
  if (stat(path, &here) < 0) {
    snprintf(buf, len, "%s", dir);
    return;
  }
  for (;;) {
    char parent[PATH_MAX];
    if (strcmp(path, "/") == 0 || dd_parent_dir(path, parent, sizeof(parent)) < 0 ||
        stat(parent, &up) < 0 || up.st_dev != here.st_dev)
      break;
    snprintf(path, sizeof(path), "%s", parent);
  }
  snprintf(buf, len, "%s", path);
}

int dd_space_check(const dd_job *j, const char *dir,
                   uint64_t needed)
{
  struct statvfs sv;

  if (statvfs(dir, &sv) < 0) {
    int err = errno;
    return j->host->error(j->job, VMSNAP_E_BACKEND, "cannot read the free space of %s: %s", dir,
                          strerror(err));
  }
  /* f_bavail, not f_bfree: the space root reserves is not ours to fill. */
  uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
  if (needed <= avail)
    return 0;
  char need_s[32], avail_s[32], mnt[PATH_MAX];
  vp_human_size(needed, need_s, sizeof(need_s));
  vp_human_size(avail, avail_s, sizeof(avail_s));
  mount_point(dir, mnt, sizeof(mnt));
  int same = strcmp(mnt, dir) == 0;
  return j->host->error(j->job, VMSNAP_E_NOSPC,
                        "the copy needs %s, %s free on %s%s%s%s; "
                        "free some space there or put the copy on another "
                        "filesystem with ,file=PATH",
                        need_s, avail_s, mnt, same ? "" : " (for ", same ? "" : dir,
                        same ? "" : ")");
}

/* How much a copy of src into dest_dir takes: nothing when it can be a
 * reflink (same filesystem, FICLONE works), else the bytes of data src
 * holds (the whole size of a block device). */
int dd_needed_bytes(const dd_job *j, const char *src, const char *dest_dir,
                    uint64_t *needed, uint64_t *data, uint64_t *size)
{
  struct stat ss = {0}, ds = {0};
  int rc = 0, fd = open(src, O_RDONLY | O_CLOEXEC);

  if (fd < 0 || (rc = dd_fd_size(fd, size)) < 0 ||
      (rc = dd_allocated_bytes(fd, data)) < 0 || fstat(fd, &ss) < 0 ||
      stat(dest_dir, &ds) < 0)
    rc = rc < 0 ? rc : -errno;
  if (fd >= 0)
    close(fd);
  if (rc < 0)
    return j->host->error(j->job, rc == -ENOENT ? VMSNAP_E_NOT_FOUND : VMSNAP_E_BACKEND,
                          "cannot measure %s or %s: %s; check that both exist",
                          src, dest_dir, strerror(-rc));
  int reflink = S_ISREG(ss.st_mode) && ss.st_dev == ds.st_dev &&
                dd_reflink_works(dest_dir);
  *needed = reflink ? 0 : *data;
  return 0;
}
