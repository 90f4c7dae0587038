/* copy.c — the dd backend's copy engine (see copy.h). */
#define _GNU_SOURCE
#include "copy.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Large enough that syscall overhead vanishes, small enough that a cancel
 * or a progress update comes within a fraction of a second on slow disks. */
#define RANGE_CHUNK (16u << 20)
#define RW_CHUNK (8u << 20)
/* Granularity of zero detection: the page / filesystem block size. */
#define ZERO_BLOCK 4096u
/* copy_file_range cannot serve this pair of files: use read/write. */
#define FALLBACK 1
/* Parallel copy_file_range streams: a single stream leaves the disk idle
 * between a chunk's read and the next (qemu-img convert runs 8 requests
 * at once for the same reason). Chunks of PARALLEL_CHUNK each. */
#define COPY_THREADS 4
#define PARALLEL_CHUNK (8u << 20)

typedef struct copy_state {
  /* from the caller */
  int src, dst;
  const char *src_name, *dst_name;
  unsigned flags;
  const dd_copy_ops *ops;
  dd_copy_result *res;
  /* private */
  int src_is_reg, dst_is_reg;
  int use_range; /* copy_file_range still worth trying */
  char *buf;     /* RW_CHUNK bytes, page aligned, made on first use */
} copy_state;

static int __attribute__((format(printf, 4, 0)))
vfail(dd_copy_result *res, int err, int with_reason,
                 const char *fmt, va_list ap)
{
  char what[768];

  vsnprintf(what, sizeof(what), fmt, ap);
  if (with_reason)
    snprintf(res->message, sizeof(res->message), "%s: %s", what, strerror(err));
  else
    snprintf(res->message, sizeof(res->message), "%s", what);
  /* Out of quota is out of space as far as the user is concerned. */
  return err == EDQUOT ? -ENOSPC : -err;
}

/* Records "<what>: <strerror(err)>" and returns the negative errno. */
static int __attribute__((format(printf, 3, 4)))
fail(dd_copy_result *res, int err, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int rc = vfail(res, err, 1, fmt, ap);
  va_end(ap);
  return rc;
}

/* Same, when the message already says why. */
static int __attribute__((format(printf, 3, 4)))
fail_plain(dd_copy_result *res, int err, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int rc = vfail(res, err, 0, fmt, ap);
  va_end(ap);
  return rc;
}

static int check_cancel(copy_state *st)
{
  if (st->ops && st->ops->cancelled && st->ops->cancelled(st->ops->user))
    return fail_plain(st->res, ECANCELED, "copy of %s to %s cancelled",
                      st->src_name, st->dst_name);
  return 0;
}

static void report(copy_state *st)
{
  if (st->ops && st->ops->progress)
    st->ops->progress(st->ops->user, st->res->done, st->res->total);
}

static int short_source(copy_state *st, uint64_t off)
{
  return fail_plain(st->res, EIO,
                    "%s ended at offset %llu, before its size %llu: was it "
                    "truncated during the copy?",
                    st->src_name, (unsigned long long)off,
                    (unsigned long long)st->res->size);
}

int dd_fd_size(int fd, uint64_t *size)
{
  struct stat sb;

  *size = 0;
  if (fstat(fd, &sb) < 0)
    return -errno;
  if (S_ISREG(sb.st_mode)) {
    *size = (uint64_t)sb.st_size;
    return 0;
  }
  if (S_ISBLK(sb.st_mode))
    return ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
  return -EINVAL;
}

int dd_allocated_bytes(int fd, uint64_t *bytes)
{
  struct stat sb;
  uint64_t size = 0;
  int rc = dd_fd_size(fd, &size);

  if (rc < 0 || fstat(fd, &sb) < 0)
    return rc < 0 ? rc : -errno;
  *bytes = size;
  if (!S_ISREG(sb.st_mode))
    return 0; /* a block device has no holes we could see */
  *bytes = 0;
  for (off_t off = 0; (uint64_t)off < size;) {
    off_t data = lseek(fd, off, SEEK_DATA);
    if (data < 0 && errno == ENXIO)
      break; /* only a hole up to the end */
    if (data < 0 && errno == EINVAL) {
      *bytes += size - (uint64_t)off; /* cannot tell: count it all */
      break;
    }
    if (data < 0)
      return -errno;
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0)
      return -errno;
    if ((uint64_t)hole > size)
      hole = (off_t)size;
    *bytes += (uint64_t)(hole - data);
    off = hole;
  }
  return 0;
}

static int pwrite_full(copy_state *st, const char *p, size_t n, uint64_t off)
{
  while (n > 0) {
    ssize_t w = pwrite(st->dst, p, n, (off_t)off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return fail(st->res, w < 0 ? errno : EIO, "writing %s at offset %llu",
                  st->dst_name, (unsigned long long)off);
    p += w;
    n -= (size_t)w;
    off += (uint64_t)w;
  }
  return 0;
}

static int is_zero(const char *p, size_t n)
{
  /* Compares the block with itself shifted by one: glibc's vectorised
   * memcmp, no zero page needed. */
  return p[0] == 0 && memcmp(p, p + 1, n - 1) == 0;
}

/* Writes the non-zero blocks of buf only: the destination was truncated to
 * its full size, so what is skipped stays a hole and reads as zeroes. */
static int write_nonzero(copy_state *st, const char *buf, size_t n,
                         uint64_t off)
{
  size_t i = 0;

  while (i < n) {
    while (i < n && is_zero(buf + i, n - i < ZERO_BLOCK ? n - i : ZERO_BLOCK))
      i += ZERO_BLOCK;
    size_t start = i;
    while (i < n && !is_zero(buf + i, n - i < ZERO_BLOCK ? n - i : ZERO_BLOCK))
      i += ZERO_BLOCK;
    if (i > n)
      i = n;
    if (i > start) {
      int rc = pwrite_full(st, buf + start, i - start, off + start);
      if (rc < 0)
        return rc;
    }
  }
  return 0;
}

static int rw_chunk(copy_state *st, uint64_t off, size_t n)
{
  if (!st->buf && posix_memalign((void **)&st->buf, 4096, RW_CHUNK) != 0) {
    st->buf = NULL;
    return fail(st->res, ENOMEM, "allocating a %u MiB copy buffer",
                RW_CHUNK >> 20);
  }
  for (size_t got = 0; got < n;) {
    ssize_t r = pread(st->src, st->buf + got, n - got, (off_t)(off + got));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return fail(st->res, errno, "reading %s at offset %llu", st->src_name,
                  (unsigned long long)off + got);
    if (r == 0)
      return short_source(st, off + got);
    got += (size_t)r;
  }
  if (st->dst_is_reg)
    return write_nonzero(st, st->buf, n, off);
  return pwrite_full(st, st->buf, n, off);
}

static int range_chunk(copy_state *st, uint64_t off, size_t n)
{
  loff_t in = (loff_t)off, out = (loff_t)off;

  while (n > 0) {
    ssize_t r = copy_file_range(st->src, &in, st->dst, &out, n, 0);
    if (r < 0 && errno == EINTR)
      continue;
    /* Not for this pair (cross-filesystem, old kernel, special file):
     * read/write redoes the whole chunk, which is harmless. */
    if (r < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                  errno == EOPNOTSUPP))
      return FALLBACK;
    if (r < 0)
      return fail(st->res, errno, "copying %s to %s at offset %llu",
                  st->src_name, st->dst_name, (unsigned long long)in);
    if (r == 0)
      return short_source(st, (uint64_t)in);
    n -= (size_t)r;
  }
  return 0;
}

static int copy_extent(copy_state *st, uint64_t off, uint64_t len)
{
  while (len > 0) {
    int rc = check_cancel(st);
    if (rc < 0)
      return rc;
    size_t n = st->use_range ? RANGE_CHUNK : RW_CHUNK;
    if (len < n)
      n = (size_t)len;
    rc = st->use_range ? range_chunk(st, off, n) : rw_chunk(st, off, n);
    if (rc == FALLBACK) {
      st->use_range = 0;
      st->res->method = DD_COPY_READWRITE;
      continue;
    }
    if (rc < 0)
      return rc;
    off += n;
    len -= n;
    st->res->done += n;
    report(st);
  }
  return 0;
}

/* A hole of the source over an existing block device: make it read as
 * zeroes. ZERO_RANGE lets the device do it (write-zeroes, unmap); where it
 * cannot, or the range is not sector aligned, zeroes are written. */
static int zero_range(copy_state *st, uint64_t off, uint64_t len)
{
  while (len > 0) {
    int rc = check_cancel(st);
    if (rc < 0)
      return rc;
    uint64_t n = len < 4ull * RANGE_CHUNK ? len : 4ull * RANGE_CHUNK;
    if (fallocate(st->dst, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                  (off_t)off, (off_t)n) < 0) {
      if (errno != EOPNOTSUPP && errno != EINVAL && errno != ENODEV)
        return fail(st->res, errno, "zeroing %s at offset %llu", st->dst_name,
                    (unsigned long long)off);
      if (n > RW_CHUNK)
        n = RW_CHUNK;
      if (!st->buf && posix_memalign((void **)&st->buf, 4096, RW_CHUNK) != 0)
        return fail(st->res, ENOMEM, "allocating a copy buffer");
      memset(st->buf, 0, (size_t)n);
      rc = pwrite_full(st, st->buf, (size_t)n, off);
      if (rc < 0)
        return rc;
    }
    off += n;
    len -= n;
  }
  return 0;
}

/* Clones the whole file: 1 done, 0 not possible here, < 0 failed. */
static int try_reflink(copy_state *st)
{
  if ((st->flags & DD_COPY_NO_REFLINK) || !st->src_is_reg || !st->dst_is_reg)
    return 0;
  if (ioctl(st->dst, FICLONE, st->src) == 0) {
    st->res->method = DD_COPY_REFLINK;
    st->res->done = st->res->total;
    report(st);
    return 1;
  }
  if (errno == EOPNOTSUPP || errno == ENOTTY || errno == EXDEV ||
      errno == EINVAL || errno == ENOSYS)
    return 0;
  return fail(st->res, errno, "cloning %s into %s", st->src_name, st->dst_name);
}

/* The next data extent [*data, *hole) at or after off; *data == size when
 * only a hole is left. A block device, or a filesystem that cannot tell,
 * is all data. */
static int next_extent(copy_state *st, uint64_t off, uint64_t *data,
                       uint64_t *hole)
{
  uint64_t size = st->res->size;
  off_t d = -1, h = -1;

  *data = off;
  *hole = size;
  if (!st->src_is_reg)
    return 0;
  d = lseek(st->src, (off_t)off, SEEK_DATA);
  if (d < 0 && errno == ENXIO)
    d = (off_t)size;
  else if (d < 0)
    return errno == EINVAL ? 0 : fail(st->res, errno, "looking for data in %s", st->src_name);
  *data = (uint64_t)d > size ? size : (uint64_t)d;
  if (*data >= size)
    return 0;
  h = lseek(st->src, d, SEEK_HOLE);
  if (h < 0)
    return fail(st->res, errno, "looking for holes in %s", st->src_name);
  *hole = (uint64_t)h > size ? size : (uint64_t)h;
  return 0;
}

/* ---- parallel copy_file_range between two regular files ---------------- */

typedef struct parallel {
  copy_state *st;
  pthread_mutex_t lock;
  uint64_t pos, data, hole; /* next byte to hand out within [data, hole) */
  int rc;                   /* first error (negative), or FALLBACK */
} parallel;

/* Hands out the next chunk of data: 1 with *off and *n set, 0 when done. */
static int next_chunk(parallel *p, uint64_t *off, size_t *n)
{
  copy_state *st = p->st;
  while (p->rc == 0) {
    if (p->pos < p->hole) {
      uint64_t left = p->hole - p->pos;
      *off = p->pos;
      *n = left < PARALLEL_CHUNK ? (size_t)left : PARALLEL_CHUNK;
      p->pos += *n;
      return 1;
    }
    if (p->hole >= st->res->size) return 0;
    int rc = next_extent(st, p->hole, &p->data, &p->hole);
    if (rc < 0) { p->rc = rc; return 0; }
    p->pos = p->data; /* at the end, data == size: every worker stops */
    if (p->data >= st->res->size) { p->hole = p->data; return 0; }
  }
  return 0;
}

static void *parallel_worker(void *arg)
{
  parallel *p = arg;
  copy_state *st = p->st;
  uint64_t off;
  size_t n;
  pthread_mutex_lock(&p->lock);
  /* A private result for messages, so failing workers do not write the
   * shared one at once; the first error is copied back under the lock. */
  dd_copy_result mine = *st->res;
  copy_state local = *st;
  local.res = &mine;
  while (next_chunk(p, &off, &n)) {
    int rc = check_cancel(st);
    pthread_mutex_unlock(&p->lock);
    if (rc == 0) rc = range_chunk(&local, off, n);
    pthread_mutex_lock(&p->lock);
    if (rc != 0) {
      if (p->rc == 0) {
        p->rc = rc;
        if (rc < 0 && mine.message[0]) memcpy(st->res->message, mine.message, sizeof mine.message);
      }
      break;
    }
    st->res->done += n;
    report(st);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

/* Both files regular and copy_file_range proven to work on them: copies
 * every data extent with COPY_THREADS streams. Returns 0, < 0, or FALLBACK
 * (nothing is lost: the caller redoes everything with read/write). */
static int copy_parallel(copy_state *st)
{
  parallel p = {.st = st, .rc = 0};
  pthread_t t[COPY_THREADS];
  int started = 0;
  pthread_mutex_init(&p.lock, NULL);
  for (int i = 0; i < COPY_THREADS; i++)
    if (pthread_create(&t[started], NULL, parallel_worker, &p) == 0) started++;
  if (started == 0) parallel_worker(&p);
  for (int i = 0; i < started; i++) pthread_join(t[i], NULL);
  pthread_mutex_destroy(&p.lock);
  return p.rc;
}

/* Copies each data extent of the source; holes are skipped (regular
 * destination) or zeroed (block device). */
static int copy_extents(copy_state *st)
{
  uint64_t size = st->res->size, data, hole;

  for (uint64_t off = 0; off < size; off = hole) {
    int rc = next_extent(st, off, &data, &hole);
    if (rc == 0 && data > off && !st->dst_is_reg)
      rc = zero_range(st, off, data - off);
    if (rc == 0 && data < size)
      rc = copy_extent(st, data, hole - data);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* Checks the pair and fills res->size and res->total. */
static int copy_setup(copy_state *st)
{
  struct stat ss, ds;
  int rc;

  if (fstat(st->src, &ss) < 0)
    return fail(st->res, errno, "inspecting %s", st->src_name);
  if (fstat(st->dst, &ds) < 0)
    return fail(st->res, errno, "inspecting %s", st->dst_name);
  if (!S_ISREG(ss.st_mode) && !S_ISBLK(ss.st_mode))
    return fail_plain(st->res, EINVAL, "%s is neither a regular file nor a "
                      "block device", st->src_name);
  if (!S_ISREG(ds.st_mode) && !S_ISBLK(ds.st_mode))
    return fail_plain(st->res, EINVAL, "%s is neither a regular file nor a "
                      "block device", st->dst_name);
  st->src_is_reg = S_ISREG(ss.st_mode);
  st->dst_is_reg = S_ISREG(ds.st_mode);
  st->use_range = st->src_is_reg && st->dst_is_reg &&
                  !(st->flags & DD_COPY_NO_RANGE);
  if ((rc = dd_fd_size(st->src, &st->res->size)) < 0)
    return fail(st->res, -rc, "reading the size of %s", st->src_name);
  if ((rc = dd_allocated_bytes(st->src, &st->res->total)) < 0)
    return fail(st->res, -rc, "mapping the data of %s", st->src_name);
  if (!st->dst_is_reg) {
    uint64_t dsize = 0;
    if ((rc = dd_fd_size(st->dst, &dsize)) < 0)
      return fail(st->res, -rc, "reading the size of %s", st->dst_name);
    if (dsize < st->res->size)
      return fail_plain(st->res, ENOSPC, "%s holds %llu bytes, fewer than "
                        "the %llu of %s", st->dst_name,
                        (unsigned long long)dsize,
                        (unsigned long long)st->res->size, st->src_name);
  } else if (ftruncate(st->dst, 0) < 0) {
    return fail(st->res, errno, "truncating %s", st->dst_name);
  }
  return 0;
}

static int copy_run(copy_state *st)
{
  int rc = copy_setup(st);
  if (rc < 0 || (rc = check_cancel(st)) < 0)
    return rc;
  report(st);
  rc = try_reflink(st);
  if (rc != 0)
    return rc < 0 ? rc : 0;
  st->res->method = st->use_range ? DD_COPY_RANGE : DD_COPY_READWRITE;
  /* Full size first: whatever is not written stays a hole. */
  if (st->dst_is_reg && ftruncate(st->dst, (off_t)st->res->size) < 0)
    return fail(st->res, errno, "extending %s to %llu bytes", st->dst_name,
                (unsigned long long)st->res->size);
  posix_fadvise(st->src, 0, 0, POSIX_FADV_SEQUENTIAL);
  /* No data (an all-hole image): nothing to start threads for. */
  if (st->use_range && st->res->total > 0 && !(st->flags & DD_COPY_NO_PARALLEL)) {
    rc = copy_parallel(st);
    if (rc != FALLBACK) {
      if (rc == 0 && st->res->size == 0) st->res->method = DD_COPY_NOTHING;
      return rc;
    }
    /* This pair cannot use copy_file_range: start over with read/write. */
    st->use_range = 0;
    st->res->done = 0;
    st->res->method = DD_COPY_READWRITE;
    st->res->message[0] = '\0';
  }
  rc = copy_extents(st);
  if (rc == 0 && st->res->size == 0)
    st->res->method = DD_COPY_NOTHING;
  return rc;
}

int dd_copy_fd(int src_fd, const char *src_name, int dst_fd,
               const char *dst_name, unsigned flags, const dd_copy_ops *ops,
               dd_copy_result *res)
{
  copy_state st = {
    .src = src_fd, .dst = dst_fd, .src_name = src_name,
    .dst_name = dst_name, .flags = flags, .ops = ops, .res = res,
  };

  memset(res, 0, sizeof(*res));
  int rc = copy_run(&st);
  free(st.buf);
  if (rc < 0)
    return rc;
  /* Delayed allocation (btrfs, ext4) may only find out now that the space
   * is not there: this is where ENOSPC can surface. */
  if (!(flags & DD_COPY_NO_SYNC) && fsync(dst_fd) < 0)
    return fail(res, errno, "flushing %s to disk", dst_name);
  return 0;
}
