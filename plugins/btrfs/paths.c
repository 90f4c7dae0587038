/* paths.c — where the btrfs backend's subvolumes live (layout: btrfs.h). */
#define _GNU_SOURCE
#include "btrfs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int bt_join(char *buf, size_t len, const char *dir, const char *name)
{
  const char *sep = strcmp(dir, "/") == 0 ? "" : "/";
  int n = snprintf(buf, len, "%s%s%s", dir, sep, name);
  return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int bt_parent_dir(const char *path, char *buf, size_t len)
{
  const char *slash = strrchr(path, '/');
  int n = !slash ? snprintf(buf, len, ".")
          : slash == path ? snprintf(buf, len, "/")
                          : snprintf(buf, len, "%.*s", (int)(slash - path), path);
  return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

const char *bt_base_name(const char *path)
{
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* The disk's subvolume now: `active` when the core knows it (an older core
 * has no such field), else the source; symlinks resolved. */
int bt_live_path(const bt_job *j, char *buf, size_t len)
{
  const vmsnap_disk *d = j->info->disk;
  const char *now = d->struct_size >= offsetof(vmsnap_disk, active) + sizeof(d->active) &&
                            d->active ? d->active : d->source;
  char real[PATH_MAX];

  if (!realpath(now, real)) {
    int err = errno;
    return bt_fail(j, bt_errno_code(err), err, "cannot find the subvolume %s", now);
  }
  if (snprintf(buf, len, "%s", real) >= (int)len)
    return j->host->error(j->job, VMSNAP_E_INVALID, "path too long: %s", real);
  return 0;
}

/* A domain's name as one path component: [A-Za-z0-9_-] kept, the rest
 * (and a leading '.', so never "." or "..") as +HH. */
static int encode_component(const char *in, char *out, size_t len)
{
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
    int keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
               (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
               (*p == '.' && p != (const unsigned char *)in);
    if (o + 4 >= len) return -ENAMETOOLONG;
    if (keep)
      out[o++] = (char)*p;
    else
      o += (size_t)snprintf(out + o, len - o, "+%02x", *p);
  }
  out[o] = '\0';
  return o ? 0 : -EINVAL;
}

/* Where this disk's snapshots go: file=DIR, or beside the subvolume in
 * .vmsnap/<domain>/<subvolume name>/. */
int bt_location(const bt_job *j, const char *live, char *buf, size_t len)
{
  const vmsnap_disk *d = j->info->disk;
  char parent[PATH_MAX], dom[NAME_MAX + 1], a[PATH_MAX], b[PATH_MAX];

  if (d->file) {
    if (d->file[0] != '/')
      return j->host->error(j->job, VMSNAP_E_INVALID,
                            "file=%s must be the absolute path of a directory on "
                            "the same btrfs as %s; nothing was changed",
                            d->file, live);
    if (snprintf(buf, len, "%s", d->file) >= (int)len)
      return j->host->error(j->job, VMSNAP_E_INVALID, "file=%s is too long", d->file);
    return 0;
  }
  if (!d->domain || encode_component(d->domain, dom, sizeof dom) < 0)
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "the domain name \"%s\" cannot name a directory; give the "
                          "disk file=DIR for its snapshots; nothing was changed",
                          d->domain ? d->domain : "");
  if (bt_parent_dir(live, parent, sizeof parent) < 0 ||
      bt_join(a, sizeof a, parent, BT_TOP_DIR) < 0 || bt_join(b, sizeof b, a, dom) < 0 ||
      bt_join(buf, len, b, bt_base_name(live)) < 0)
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "the snapshot directory beside %s would be too long; give "
                          "the disk file=DIR; nothing was changed",
                          live);
  return 0;
}

/* Opens one directory level below dirfd, making it (0700) if needed; never
 * follows a symlink planted where we write. */
static int open_level(int dirfd, const char *name, int make)
{
  if (make && mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST) return -1;
  return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Opens the snapshot location loc (made when it is the default one), as a
 * directory fd. A concurrent remove may rmdir an empty level under us:
 * try again then. */
int bt_open_location(const bt_job *j, const char *live, const char *loc)
{
  char parent[PATH_MAX], rel[PATH_MAX];
  int fd = -1, err = 0;

  if (j->info->disk->file || bt_parent_dir(live, parent, sizeof parent) < 0 ||
      strncmp(loc, parent, strlen(parent)) != 0) {
    fd = open(loc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    err = errno;
  } else {
    for (int attempt = 0; attempt < 3 && fd < 0; attempt++) {
      int dfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      snprintf(rel, sizeof rel, "%s", loc + strlen(parent) + (strcmp(parent, "/") != 0));
      char *save = NULL;
      for (char *c = strtok_r(rel, "/", &save); c && dfd >= 0; c = strtok_r(NULL, "/", &save)) {
        int next = open_level(dfd, c, 1);
        err = errno;
        close(dfd);
        dfd = next;
      }
      if (dfd < 0 && !err) err = errno;
      fd = dfd;
      if (fd < 0 && err != ENOENT) break;
    }
  }
  if (fd < 0)
    return bt_fail(j, err == ENOENT ? VMSNAP_E_NOT_FOUND : VMSNAP_E_BACKEND, err,
                   "cannot open the snapshot directory %s; %s", loc,
                   j->info->disk->file ? "create it on the same btrfs, or fix file="
                                       : "check the permissions beside the subvolume");
  return fd;
}

/* After the last snapshot of a disk went: its default directory and the
 * domain's go too when empty (.vmsnap stays: other disks may be using it). */
void bt_rmdir_location(const bt_job *j, const char *snap)
{
  char dir[PATH_MAX], up[PATH_MAX];

  if (j->info->disk->file || bt_parent_dir(snap, dir, sizeof dir) < 0) return;
  if (bt_parent_dir(dir, up, sizeof up) < 0 || strcmp(bt_base_name(dir), BT_TOP_DIR) == 0)
    return;
  char top[PATH_MAX];
  /* Only inside .vmsnap/<domain>/<name>/: never a directory of the user's. */
  if (bt_parent_dir(up, top, sizeof top) < 0 || strcmp(bt_base_name(top), BT_TOP_DIR) != 0)
    return;
  if (rmdir(dir) == 0) rmdir(up);
}

/* <dir of live>/.<name of live>.vmsnap-revert-<uuid>: in the live
 * subvolume's own directory, as RENAME_EXCHANGE needs. */
int bt_staged_path(const char *live, const char *uuid, char *buf, size_t len)
{
  char dir[PATH_MAX], name[NAME_MAX + 1];
  int room = NAME_MAX - 1 - (int)strlen(BT_REVERT_SUFFIX) - (int)strlen(uuid);

  if (room < 1 || bt_parent_dir(live, dir, sizeof dir) < 0) return -ENAMETOOLONG;
  snprintf(name, sizeof name, ".%.*s%s%s", room, bt_base_name(live), BT_REVERT_SUFFIX, uuid);
  return bt_join(buf, len, dir, name);
}

/* 1 when both fds are on the same btrfs (subvolumes have their own st_dev,
 * so ask the filesystem for its uuid), 0 when not, -errno. */
int bt_same_fs(int fd_a, int fd_b)
{
  struct btrfs_ioctl_fs_info_args a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  if (ioctl(fd_a, BTRFS_IOC_FS_INFO, &a) < 0 || ioctl(fd_b, BTRFS_IOC_FS_INFO, &b) < 0)
    return errno == ENOTTY ? 0 : -errno;
  return memcmp(a.fsid, b.fsid, sizeof a.fsid) == 0;
}
