/* paths.c — where the dd backend's files live, and telling ours from
 * anybody else's (see the layout in dd.h). */
#define _GNU_SOURCE
#include "dd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

static int join(char *buf, size_t len, const char *dir, const char *name)
{
  /* "/" + "x" must give "/x", not "//x". */
  const char *sep = strcmp(dir, "/") == 0 ? "" : "/";
  int n = snprintf(buf, len, "%s%s%s", dir, sep, name);
  return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int dd_parent_dir(const char *path, char *buf, size_t len)
{
  const char *slash = strrchr(path, '/');
  int n;

  if (!slash)
    n = snprintf(buf, len, ".");
  else if (slash == path)
    n = snprintf(buf, len, "/");
  else
    n = snprintf(buf, len, "%.*s", (int)(slash - path), path);
  return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static const char *base_name(const char *path)
{
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

int dd_disk_resolve(const dd_job *j, const vmsnap_disk *disk, dd_disk *d)
{
  memset(d, 0, sizeof(*d));
  d->disk = disk;
  if (!realpath(disk->source, d->path) || stat(d->path, &d->st) < 0) {
    int err = errno;
    return j->host->error(j->job, err == ENOENT ? VMSNAP_E_NOT_FOUND : VMSNAP_E_BACKEND,
                          "cannot access %s: %s; check the disk's path", disk->source,
                          strerror(err));
  }
  d->is_block = S_ISBLK(d->st.st_mode);
  if (!d->is_block && !S_ISREG(d->st.st_mode))
    return j->host->error(j->job, VMSNAP_E_UNSUPPORTED,
                          "%s is neither a regular file nor a block "
                          "device; the dd backend cannot copy it",
                          d->path);
  return 0;
}

/* <dir of disk>/.vmsnap/<basename of disk>: on the disk's filesystem, so a
 * reflink can share its extents. */
int dd_default_dir(const dd_disk *d, char *buf, size_t len)
{
  char dir[PATH_MAX], top[PATH_MAX];
  int rc = dd_parent_dir(d->path, dir, sizeof(dir));

  if (rc == 0)
    rc = join(top, sizeof(top), dir, ".vmsnap");
  if (rc == 0)
    rc = join(buf, len, top, base_name(d->path));
  return rc;
}

/* mkdir that accepts an existing directory, but only a real one of ours:
 * in a directory others can write to, a planted symlink must not steer
 * where we write a copy of the disk. */
static int make_private_dir(const dd_job *j, const dd_disk *d, const char *dir)
{
  struct stat sb;

  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    int err = errno;
    return j->host->error(j->job, VMSNAP_E_BACKEND,
                          "cannot create %s for its snapshots: %s; "
                          "fix the permissions or put the snapshot elsewhere "
                          "with ,file=PATH",
                          dir, strerror(err));
  }
  if (lstat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != geteuid())
    return j->host->error(j->job, VMSNAP_E_BACKEND,
                          "%s is not a directory owned by uid %d; "
                          "vmsnap will not write snapshots there; remove it or "
                          "use ,file=PATH",
                          dir, (int)geteuid());
  return 0;
}

int dd_make_default_dir(const dd_job *j, const dd_disk *d)
{
  char dir[PATH_MAX], top[PATH_MAX];

  if (dd_default_dir(d, dir, sizeof(dir)) < 0 ||
      dd_parent_dir(dir, top, sizeof(top)) < 0)
    return j->host->error(j->job, VMSNAP_E_INVALID, "the path %s is too long", d->path);
  int rc = make_private_dir(j, d, top);
  return rc < 0 ? rc : make_private_dir(j, d, dir);
}

int dd_snapshot_path(const dd_job *j, const vmsnap_job_info *info,
                     const dd_disk *d, char *buf, size_t len)
{
  char dir[PATH_MAX], name[NAME_MAX + 1];

  if (d->disk->file) {
    if (d->disk->file[0] != '/')
      return j->host->error(j->job, VMSNAP_E_INVALID, "file=%s must be an absolute path",
                            d->disk->file);
    if (snprintf(buf, len, "%s", d->disk->file) >= (int)len)
      return j->host->error(j->job, VMSNAP_E_INVALID, "file=%s is too long", d->disk->file);
    return 0;
  }
  if (d->is_block)
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "%s is a block device: the dd backend "
                          "copies it into a file and must be told where; add "
                          ",file=PATH to the disk (on a filesystem with room "
                          "for the whole device)", d->path);
  if (!info->object_name || !*info->object_name || strchr(info->object_name, '/'))
    return j->host->error(j->job, VMSNAP_E_INVALID, "unusable object name \"%s\" for a file",
                          info->object_name ? info->object_name : "");
  if (snprintf(name, sizeof(name), "%s" DD_SUFFIX, info->object_name) >= (int)sizeof(name) ||
      dd_default_dir(d, dir, sizeof(dir)) < 0 || join(buf, len, dir, name) < 0)
    return j->host->error(j->job, VMSNAP_E_INVALID,
                          "the snapshot's path under %s would be too "
                          "long; use ,file=PATH",
                          d->path);
  return 0;
}

/* <dir>/.<base><suffix>, the base shortened so the name fits NAME_MAX;
 * suffixes carry the snapshot uuid, which keeps shortened names unique. */
int dd_hidden_sibling(const char *path, const char *suffix, char *buf, size_t len)
{
  char dir[PATH_MAX], name[NAME_MAX + 1];
  int room = NAME_MAX - 1 - (int)strlen(suffix);

  if (room < 1 || dd_parent_dir(path, dir, sizeof(dir)) < 0)
    return -ENAMETOOLONG;
  snprintf(name, sizeof(name), ".%.*s%s", room, base_name(path), suffix);
  return join(buf, len, dir, name);
}

/* 1: a regular file carrying our mark for this uuid, or one on a
 * filesystem without xattrs (its recorded path is all we have); 0: not
 * ours; -ENOENT: not there. */
int dd_is_ours(const char *path, const char *uuid)
{
  struct stat sb;
  char value[128];

  if (lstat(path, &sb) < 0)
    return -errno;
  if (!S_ISREG(sb.st_mode))
    return 0;
  ssize_t n = lgetxattr(path, DD_MARK_XATTR, value, sizeof(value) - 1);
  if (n < 0)
    return errno == EOPNOTSUPP ? 1 : errno == ENODATA || errno == ERANGE ? 0 : -errno;
  value[n] = '\0';
  return uuid && strcmp(value, uuid) == 0;
}

/* Deletes path if this snapshot made it; a missing file is success and a
 * foreign one is left alone with a warning (never an error: a rollback
 * must be able to finish). */
int dd_remove_ours(const dd_job *j, const char *path, const char *uuid)
{
  int ours = dd_is_ours(path, uuid);

  if (ours == -ENOENT)
    return 0;
  if (ours == 0) {
    j->host->warn(j->job, "left %s in place: it was not made by snapshot %s "
                  "(no %s mark with its uuid); delete it yourself if it is "
                  "not needed", path, uuid ? uuid : "?", DD_MARK_XATTR);
    return 0;
  }
  if (ours < 0 || unlink(path) < 0) {
    int err = ours < 0 ? -ours : errno;
    if (err == ENOENT)
      return 0;
    return j->host->error(j->job, VMSNAP_E_BACKEND,
                          "cannot delete %s: %s; check its permissions and "
                          "run the delete again", path, strerror(err));
  }
  return 0;
}
