/* newfile.c — making a copy appear atomically under its final name, and
 * the filesystem questions around it (see copy.h). */
#define _GNU_SOURCE
#include "copy.h"
#include "unnamed_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <unistd.h>

static void parent_of(const char *path, char dir[PATH_MAX])
{
  const char *slash = strrchr(path, '/');

  if (!slash)
    snprintf(dir, PATH_MAX, ".");
  else if (slash == path)
    snprintf(dir, PATH_MAX, "/");
  else
    snprintf(dir, PATH_MAX, "%.*s", (int)(slash - path), path);
}

/* Some filesystems cannot fsync a directory (EINVAL): nothing to do. */
static int fsync_dir(int fd)
{
  return fsync(fd) < 0 && errno != EINVAL ? -errno : 0;
}

int dd_fsync_parent(const char *path)
{
  char dir[PATH_MAX];

  parent_of(path, dir);
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int rc = fsync_dir(fd);
  close(fd);
  return rc;
}

int dd_rename_noreplace(const char *from, const char *to)
{
  if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOSYS)
    return -errno;
  /* No RENAME_NOREPLACE here (NFS, old filesystems): link() refuses an
   * existing name just as atomically. */
  if (link(from, to) == 0)
    return unlink(from) < 0 ? -errno : 0;
  if (errno != EPERM && errno != EOPNOTSUPP)
    return -errno;
  /* No hard links either (vfat): check, then rename; racy, the best left. */
  if (access(to, F_OK) == 0)
    return -EEXIST;
  return rename(from, to) < 0 ? -errno : 0;
}

/* Filesystems that never share extents: asking them costs two inodes made
 * and freed, journal work the op's next fsync then waits for. */
static int never_reflinks(const char *dir)
{
  struct statfs sf;
  if (statfs(dir, &sf) < 0) return 0;
  switch ((unsigned long)sf.f_type) {
  case EXT4_SUPER_MAGIC: /* also ext2 and ext3 */
  case TMPFS_MAGIC:
  case RAMFS_MAGIC:
    return 1;
  default:
    return 0;
  }
}

int dd_reflink_works(const char *dir)
{
  if (never_reflinks(dir)) return 0;
  int a = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  int b = a < 0 ? -1 : open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  int works;

  if (a >= 0 && b >= 0) {
    works = ioctl(b, FICLONE, a) == 0;
  } else {
    /* No O_TMPFILE (or no write access): go by the filesystem type. */
    struct statfs sf;
    works = statfs(dir, &sf) == 0 &&
            (sf.f_type == BTRFS_SUPER_MAGIC || sf.f_type == XFS_SUPER_MAGIC);
  }
  if (a >= 0)
    close(a);
  if (b >= 0)
    close(b);
  return works;
}

/* Best effort: attributes the filesystem or our privileges refuse (a
 * security label, a trusted.* name without CAP_SYS_ADMIN) are skipped, as
 * cp -a does. */
static void copy_xattrs(int from, int to, const char *skip)
{
  ssize_t len = flistxattr(from, NULL, 0);
  char *names = len > 0 ? malloc((size_t)len) : NULL;

  if (names)
    len = flistxattr(from, names, (size_t)len);
  for (ssize_t i = 0; names && i < len; i += (ssize_t)strlen(names + i) + 1) {
    const char *name = names + i;
    if (skip && strcmp(name, skip) == 0)
      continue;
    ssize_t vlen = fgetxattr(from, name, NULL, 0);
    char *value = vlen >= 0 ? malloc((size_t)vlen + 1) : NULL;
    if (value && (vlen = fgetxattr(from, name, value, (size_t)vlen)) >= 0)
      (void)fsetxattr(to, name, value, (size_t)vlen, 0);
    free(value);
  }
  free(names);
}

static int set_attrs(int fd, const char *name, const dd_new_file *nf,
                     dd_copy_result *res)
{
  if ((nf->uid != (uid_t)-1 || nf->gid != (gid_t)-1) &&
      fchown(fd, nf->uid, nf->gid) < 0) {
    int err = errno;
    snprintf(res->message, sizeof(res->message),
             "giving %s the owner %d:%d: %s", name, (int)nf->uid,
             (int)nf->gid, strerror(err));
    return -err;
  }
  /* After chown, which clears set-id bits. */
  if (fchmod(fd, nf->mode & 07777) < 0) {
    int err = errno;
    snprintf(res->message, sizeof(res->message), "setting mode %o on %s: %s",
             (unsigned)(nf->mode & 07777), name, strerror(err));
    return -err;
  }
  if (nf->xattrs_from >= 0)
    copy_xattrs(nf->xattrs_from, fd, nf->mark_name);
  /* The mark lets remove tell our file from one that took its name; a
   * filesystem without user xattrs simply has no mark. */
  if (nf->mark_name &&
      fsetxattr(fd, nf->mark_name, nf->mark_value, strlen(nf->mark_value), 0) < 0 &&
      errno != EOPNOTSUPP) {
    int err = errno;
    snprintf(res->message, sizeof(res->message), "marking %s with %s: %s",
             name, nf->mark_name, strerror(err));
    return -err;
  }
  return 0;
}

static int fail_msg(dd_copy_result *res, int err, const char *what,
                    const char *name)
{
  snprintf(res->message, sizeof(res->message), "%s %s: %s", what, name,
           strerror(err));
  return err == EDQUOT ? -ENOSPC : -err;
}

/* The unnamed file: copied, linked as path (the name appears with all of
 * the copy), then flushed (its link count with it). A crash or cancel
 * before the link leaves nothing; a failure after it removes path. */
static int copy_unnamed(int src, const char *src_path, int dst,
                        const dd_new_file *nf, unsigned flags,
                        const dd_copy_ops *ops, dd_copy_result *res)
{
  int rc = set_attrs(dst, nf->path, nf, res);
  if (rc == 0)
    rc = dd_copy_fd(src, src_path, dst, nf->path, flags | DD_COPY_NO_SYNC,
                    ops, res);
  if (rc < 0)
    return rc;
  if ((rc = vp_link_unnamed(dst, AT_FDCWD, nf->path)) < 0)
    return fail_msg(res, -rc, "linking the copy as", nf->path);
  /* Delayed allocation may only find out now that the space is not
   * there: ENOSPC can surface here. */
  if (fsync(dst) < 0) {
    rc = fail_msg(res, errno, "flushing", nf->path);
    unlink(nf->path);
  }
  return rc;
}

/* The named temporary: copied and flushed, then renamed to path. */
static int copy_named(int src, const char *src_path, const dd_new_file *nf,
                      unsigned flags, const dd_copy_ops *ops,
                      dd_copy_result *res)
{
  int dst = open(nf->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (dst < 0)
    return fail_msg(res, errno, "creating", nf->tmp_path);
  int rc = set_attrs(dst, nf->tmp_path, nf, res);
  if (rc == 0)
    rc = dd_copy_fd(src, src_path, dst, nf->tmp_path, flags, ops, res);
  if (close(dst) < 0 && rc == 0)
    rc = fail_msg(res, errno, "closing", nf->tmp_path);
  if (rc == 0 && (rc = dd_rename_noreplace(nf->tmp_path, nf->path)) < 0)
    snprintf(res->message, sizeof(res->message), "renaming %s to %s: %s",
             nf->tmp_path, nf->path, strerror(-rc));
  if (rc < 0)
    unlink(nf->tmp_path);
  return rc;
}

/* Unnamed where possible: nothing to clean up after a crash, and no
 * temporary name made and renamed, a change to the directory that the
 * file's flush (ext4 without a journal flushes a new entry's directory)
 * and the directory's own would both write. */
static int copy_into(int src, const char *src_path, int dirfd,
                     const dd_new_file *nf, unsigned flags,
                     const dd_copy_ops *ops, dd_copy_result *res)
{
  int dst = flags & DD_COPY_NAMED_TEMP ? -1 : vp_open_unnamed(dirfd, ".", 0600);
  if (dst < 0)
    return copy_named(src, src_path, nf, flags, ops, res);
  int rc = copy_unnamed(src, src_path, dst, nf, flags, ops, res);
  close(dst);
  return rc;
}

int dd_copy_new_file(const char *src_path, const dd_new_file *nf,
                     unsigned flags, const dd_copy_ops *ops,
                     dd_copy_result *res)
{
  char dir[PATH_MAX];

  memset(res, 0, sizeof(*res));
  int src = open(src_path, O_RDONLY | O_CLOEXEC);
  if (src < 0)
    return fail_msg(res, errno, "opening", src_path);
  /* The directory once: the unnamed file is made in it, and it is flushed
   * once the name is there. */
  parent_of(nf->path, dir);
  int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) {
    int rc = fail_msg(res, errno, "opening the directory of", nf->path);
    close(src);
    return rc;
  }
  int rc = copy_into(src, src_path, dirfd, nf, flags, ops, res);
  close(src);
  if (rc == 0 && (rc = fsync_dir(dirfd)) < 0)
    fail_msg(res, -rc, "flushing the directory of", nf->path);
  close(dirfd);
  return rc;
}
