/* fs.c — durable file writes: a reader sees the old content or the new,
 * and after a crash the new content is there once we said it was. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

int fs_write_atomic(int dirfd, const char *name, const char *data, size_t len,
                    mode_t mode, vs_err *err)
{
  char tmp[512];
  snprintf(tmp, sizeof tmp, ".%s.tmp", name);
  int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0)
    return err_set(err, err_from_errno(errno), "cannot write %s: %s", name, strerror(errno));
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) goto fail;
    off += (size_t)w;
  }
  if (fchmod(fd, mode) < 0 || fsync(fd) < 0) goto fail;
  close(fd);
  fd = -1;
  if (renameat(dirfd, tmp, dirfd, name) < 0) goto fail;
  if (fsync(dirfd) < 0) goto fail;
  return 0;
fail:;
  int e = errno;
  if (fd >= 0) close(fd);
  unlinkat(dirfd, tmp, 0);
  return err_set(err, err_from_errno(e), "cannot write %s: %s", name, strerror(e));
}

int fs_write_json(int dirfd, const char *name, json_t *doc, vs_err *err)
{
  char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
  if (!text) return err_set(err, VMSNAP_E_NOMEM, "cannot encode %s", name);
  size_t len = strlen(text);
  char *nl = realloc(text, len + 2);
  if (!nl) { free(text); return err_set(err, VMSNAP_E_NOMEM, "out of memory"); }
  nl[len] = '\n';
  nl[len + 1] = '\0';
  int rc = fs_write_atomic(dirfd, name, nl, len + 1, 0600, err);
  free(nl);
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
