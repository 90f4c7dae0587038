/* fs.c — durable file writes: a reader sees the old content or the new,
 * and after a crash the new content is there once we said it was. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "unnamed_file.h"

/* All of data into fd, then its mode (the umask had its say at open). */
static int write_all(int fd, const char *data, size_t len, mode_t mode)
{
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    off += (size_t)w;
  }
  return fchmod(fd, mode);
}

/* Writes data into the temporary file .<name>.tmp of dirfd, not yet
 * flushed; returns its fd. */
static int write_temp(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
                      vs_err *err)
{
  char tmp[512];
  snprintf(tmp, sizeof tmp, ".%s.tmp", name);
  int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0)
    return err_set(err, err_from_errno(errno), "cannot write %s: %s", name, strerror(errno));
  if (write_all(fd, data, len, mode) == 0) return fd;
  int e = errno;
  close(fd);
  unlinkat(dirfd, tmp, 0);
  return err_set(err, err_from_errno(e), "cannot write %s: %s", name, strerror(e));
}

/* A file that name does not yet have: written unnamed (unnamed_file.h) and
 * linked when installed, no temporary name made, renamed, or left by a
 * crash. -1 where it cannot be: a named temporary then. */
static int write_unnamed(int dirfd, const char *name, const char *data, size_t len,
                         mode_t mode)
{
  if (faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT) return -1;
  int fd = vp_open_unnamed(dirfd, ".", mode);
  if (fd >= 0 && write_all(fd, data, len, mode) < 0) {
    close(fd);
    fd = -1;
  }
  return fd;
}

void fs_remove_temps(int dirfd)
{
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *dir = fd < 0 ? NULL : fdopendir(fd);
  if (!dir) {
    if (fd >= 0) close(fd);
    return;
  }
  struct dirent *e;
  while ((e = readdir(dir))) {
    size_t n = strlen(e->d_name);
    if (e->d_name[0] == '.' && n > 5 && strcmp(e->d_name + n - 4, ".tmp") == 0)
      unlinkat(dirfd, e->d_name, 0);
  }
  closedir(dir);
}

/* The fd of a symbolic link: it has no data to flush (its target is
 * written with its inode, made durable by its directory's flush). */
#define NO_FD INT_MIN

/* Makes the temporary symbolic link .<name>.tmp of dirfd point to target. */
static int link_temp(int dirfd, const char *name, const char *target, vs_err *err)
{
  char tmp[512];
  snprintf(tmp, sizeof tmp, ".%s.tmp", name);
  unlinkat(dirfd, tmp, 0); /* a crash's, or this batch's earlier one */
  if (symlinkat(target, dirfd, tmp) == 0) return 0;
  return err_set(err, err_from_errno(errno), "cannot write %s: %s", name, strerror(errno));
}

/* Flushes the unnamed file fd, then links it as name: a name that reaches
 * the disk has its content there, as the commit record's must (recover
 * keeps a create whose document exists). The directory's flush makes the
 * name durable, with the link count in a journaling filesystem's commit
 * (without a journal, the fsck a crash needs anyway restores the count). */
static int install_unnamed(int dirfd, const char *name, int fd, vs_err *err)
{
  int rc = fsync(fd) < 0 ? -errno : vp_link_unnamed(fd, dirfd, name);
  close(fd);
  return rc ? err_set(err, err_from_errno(-rc), "cannot write %s: %s", name, strerror(-rc)) : 0;
}

/* Flushes the temporary file of name and renames it over name. */
static int install_temp(int dirfd, const char *name, int fd, vs_err *err)
{
  char tmp[512];
  snprintf(tmp, sizeof tmp, ".%s.tmp", name);
  int rc = (fd != NO_FD && fsync(fd) < 0) || renameat(dirfd, tmp, dirfd, name) < 0 ? -1 : 0;
  int e = errno;
  if (fd != NO_FD) close(fd);
  if (!rc) return 0;
  unlinkat(dirfd, tmp, 0);
  return err_set(err, err_from_errno(e), "cannot write %s: %s", name, strerror(e));
}

/* install_temp, then the directory's flush. */
static int install_durably(int dirfd, const char *name, int fd, vs_err *err)
{
  int rc = install_temp(dirfd, name, fd, err);
  if (!rc && fsync(dirfd) < 0)
    rc = err_set(err, err_from_errno(errno), "cannot write %s: %s", name, strerror(errno));
  return rc;
}

int fs_write_atomic(int dirfd, const char *name, const char *data, size_t len,
                    mode_t mode, vs_err *err)
{
  int fd = write_temp(dirfd, name, data, len, mode, err);
  return fd < 0 ? fd : install_durably(dirfd, name, fd, err);
}

/* Detects torn or damaged state files (not an adversary: the directories
 * are 0700). Eight bytes a step: the index at 500 snapshots is ~180 KiB,
 * read and written by every op. */
uint64_t fs_checksum(const char *s, size_t n)
{
  uint64_t h = 1469598103934665603ull ^ n, w;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    memcpy(&w, s + i, 8);
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
  }
  for (; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h ^ (h >> 32);
}

static char *dump_json(json_t *doc, size_t *len)
{
  char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
  if (!text) return NULL;
  *len = strlen(text);
  char *nl = realloc(text, *len + 2);
  if (!nl) { free(text); return NULL; }
  nl[(*len)++] = '\n';
  nl[*len] = '\0';
  return nl;
}

/* ---- batches ------------------------------------------------------------ */

static void batch_drop(fs_batch_item *it)
{
  char tmp[512];
  snprintf(tmp, sizeof tmp, ".%s.tmp", it->name);
  if (it->fd != NO_FD) close(it->fd);
  if (!it->unnamed) unlinkat(it->dirfd, tmp, 0);
}

/* Adds the temporary file (or link) fd of name to the batch; written
 * again, the newer replaces the older. */
static int batch_add(fs_batch *b, int dirfd, const char *name, int fd, int unnamed)
{
  size_t i;
  for (i = 0; i < b->n; i++)
    if (b->items[i].dirfd == dirfd && strcmp(b->items[i].name, name) == 0) {
      if (b->items[i].fd != NO_FD && b->items[i].fd != fd) close(b->items[i].fd);
      b->items[i].fd = fd;
      b->items[i].unnamed = unnamed;
      return 0;
    }
  b->items[b->n++] =
      (fs_batch_item){.dirfd = dirfd, .name = xstrdup(name), .fd = fd, .unnamed = unnamed};
  return 0;
}

/* A full batch: what it holds is as good as done. */
static int batch_room(fs_batch *b, int dirfd, const char *name, vs_err *err)
{
  for (size_t i = 0; i < b->n; i++)
    if (b->items[i].dirfd == dirfd && strcmp(b->items[i].name, name) == 0) return 0;
  if (b->n < FS_BATCH_MAX) return 0;
  /* The commit record is still to come: not this early commit's last. */
  const char *mark = b->before_last;
  b->before_last = NULL;
  int rc = fs_batch_commit(b, err);
  b->before_last = mark;
  return rc;
}

int fs_batch_json(fs_batch *b, int dirfd, const char *name, json_t *doc, vs_err *err)
{
  size_t len;
  int rc = batch_room(b, dirfd, name, err);
  if (rc) return rc;
  char *text = dump_json(doc, &len);
  if (!text) return err_set(err, VMSNAP_E_NOMEM, "cannot encode %s", name);
  int fd = write_unnamed(dirfd, name, text, len, 0600), unnamed = fd >= 0;
  if (!unnamed) fd = write_temp(dirfd, name, text, len, 0600, err);
  free(text);
  if (fd < 0) return fd;
  /* Start the write-back now, so the flushes below find it under way
   * and a journaling filesystem commits every file in one go. */
  sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  return batch_add(b, dirfd, name, fd, unnamed);
}

int fs_batch_link(fs_batch *b, int dirfd, const char *name, const char *target, vs_err *err)
{
  int rc = batch_room(b, dirfd, name, err);
  if (!rc) rc = link_temp(dirfd, name, target, err);
  return rc ? rc : batch_add(b, dirfd, name, NO_FD, 0);
}

int fs_batch_commit(fs_batch *b, vs_err *err)
{
  int rc = 0;
  size_t i, k;
  for (i = 0; i < b->n; i++) {
    if (rc) {
      batch_drop(&b->items[i]);
      continue;
    }
    if (b->before_last && i + 1 == b->n) crashpoint(b->before_last);
    fs_batch_item *it = &b->items[i];
    rc = it->unnamed ? install_unnamed(it->dirfd, it->name, it->fd, err)
                     : install_temp(it->dirfd, it->name, it->fd, err);
  }
  /* Each directory once, after the last rename into it, in the order of
   * those last renames: the directory of the last write is flushed last. */
  for (i = 0; !rc && i < b->n; i++) {
    for (k = i + 1; k < b->n && b->items[k].dirfd != b->items[i].dirfd; k++)
      ;
    if (k == b->n && fsync(b->items[i].dirfd) < 0)
      rc = err_set(err, err_from_errno(errno), "cannot sync the directory of %s: %s",
                   b->items[i].name, strerror(errno));
  }
  for (i = 0; i < b->n; i++) free(b->items[i].name);
  b->n = 0;
  b->before_last = NULL;
  return rc;
}

void fs_batch_discard(fs_batch *b)
{
  for (size_t i = 0; i < b->n; i++) {
    batch_drop(&b->items[i]);
    free(b->items[i].name);
  }
  b->n = 0;
  b->before_last = NULL;
}

int fs_write_link(int dirfd, const char *name, const char *target, vs_err *err)
{
  int rc = link_temp(dirfd, name, target, err);
  return rc ? rc : install_durably(dirfd, name, NO_FD, err);
}

int fs_write_json(int dirfd, const char *name, json_t *doc, vs_err *err)
{
  size_t len;
  char *text = dump_json(doc, &len);
  if (!text) return err_set(err, VMSNAP_E_NOMEM, "cannot encode %s", name);
  int rc = fs_write_atomic(dirfd, name, text, len, 0600, err);
  free(text);
  return rc;
}

/* Reads the whole file, then parses it: jansson's fd reader would make one
 * read() per byte, and every op reads every snapshot document. */
int fs_read_json(int dirfd, const char *name, json_t **out, vs_err *err)
{
  *out = NULL;
  int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return VMSNAP_E_NOT_FOUND;
    return err_set(err, err_from_errno(errno), "cannot read %s: %s", name, strerror(errno));
  }
  size_t len = 0, cap = 4096;
  char *buf = malloc(cap);
  ssize_t r = 0;
  while (buf && (r = read(fd, buf + len, cap - len)) != 0) {
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;
    len += (size_t)r;
    if (len == cap) {
      char *g = realloc(buf, cap *= 2);
      if (!g) { free(buf); buf = NULL; }
      buf = g;
    }
  }
  int e = errno;
  close(fd);
  if (!buf || r < 0) {
    free(buf);
    return err_set(err, buf ? VMSNAP_E_IO : VMSNAP_E_NOMEM, "cannot read %s: %s", name,
                   strerror(buf ? e : ENOMEM));
  }
  json_error_t je;
  json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
  free(buf);
  if (!doc || !json_is_object(doc)) {
    json_decref(doc);
    return err_set(err, VMSNAP_E_IO, "%s is damaged (line %d: %s); move it aside and run recover",
                   name, je.line, je.text);
  }
  *out = doc;
  return 0;
}

int fs_mkdir_p(const char *path, mode_t mode, vs_err *err)
{
  char *p = xstrdup(path);
  if (!p) return err_set(err, VMSNAP_E_NOMEM, "out of memory");
  for (char *s = p + 1;; s++) {
    if (*s == '/' || *s == '\0') {
      char c = *s;
      *s = '\0';
      if (mkdir(p, mode) < 0 && errno != EEXIST) {
        int e = errno;
        err_set(err, err_from_errno(e), "cannot create directory %s: %s", p, strerror(e));
        free(p);
        return err->code;
      }
      *s = c;
      if (!c) break;
    }
  }
  free(p);
  return 0;
}
