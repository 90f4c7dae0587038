/* test_copy.c — the dd backend's copy engine on real files.
 *
 *   test_copy DIR [--reflink yes|no] [--nospc SMALLDIR] [--blockdev DEV]
 *                 [--bench MIB]
 *
 * DIR: where the test files go (the filesystem under test). --reflink says
 * whether FICLONE must work there (a btrfs) or must not (ext4, tmpfs).
 * --nospc: a directory on a filesystem smaller than 64 MiB: a copy into it
 * must fail with -ENOSPC and leave nothing. --blockdev: a scratch block
 * device of at least 64 MiB (its content is destroyed). --bench: time a
 * reflink and a plain copy of a dense file of that many MiB.
 * Build: see run-tests.sh (compiles plugins/dd/copy.c and newfile.c in).
 */
#define _GNU_SOURCE
#include "copy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MiB (1024ull * 1024)
#define IMG_SIZE (64 * MiB)

static const char *current = "?";
static const char *dir;

#define CHECK(cond)                                                           \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "FAIL %s (%s:%d): %s [errno: %s]\n", current, __FILE__, \
              __LINE__, #cond, strerror(errno));                              \
      exit(1);                                                                \
    }                                                                         \
  } while (0)

/* ---- fixtures ------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static void fill_random(char *p, size_t n)
{
  for (size_t i = 0; i + 8 <= n; i += 8) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17; /* xorshift64 */
    memcpy(p + i, &rng, 8);
  }
  for (size_t i = n & ~(size_t)7; i < n; i++)
    p[i] = (char)(rng >> (i % 8 * 8)) | 1;
}

static char *path_in(const char *d, const char *name)
{
  char *p;
  CHECK(asprintf(&p, "%s/%s", d, name) > 0);
  return p;
}

static void write_at(int fd, uint64_t off, uint64_t len, int zero)
{
  static char buf[1 << 20];
  while (len > 0) {
    size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);
    if (zero)
      memset(buf, 0, n);
    else
      fill_random(buf, n);
    CHECK(pwrite(fd, buf, n, (off_t)off) == (ssize_t)n);
    off += n;
    len -= n;
  }
}

/* An image of `size` bytes: dense (percent 100), sparse (every 10th MiB
 * written, the tail a hole), or all holes (0). Returns its data bytes. */
static uint64_t make_image(const char *path, uint64_t size, int percent)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  uint64_t data = 0;

  CHECK(fd >= 0);
  CHECK(ftruncate(fd, (off_t)size) == 0);
  if (percent == 100) {
    write_at(fd, 0, size, 0);
    data = size;
  } else if (percent > 0) {
    /* Runs of 256..768 KiB, each followed by nine times as much hole;
     * the last 4 MiB stay a hole. */
    uint64_t len;
    for (uint64_t off = 4096; off + 5 * MiB <= size; off += 10 * len) {
      len = (off / MiB % 3 + 1) * 256 * 1024;
      write_at(fd, off, len, 0);
      data += len;
    }
  }
  CHECK(fsync(fd) == 0);
  CHECK(close(fd) == 0);
  return data;
}

static int same_content(const char *a, const char *b)
{
  static char ba[1 << 20], bb[1 << 20];
  int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY), same = 1;
  ssize_t na, nb;

  CHECK(fa >= 0 && fb >= 0);
  do {
    na = read(fa, ba, sizeof(ba));
    nb = read(fb, bb, sizeof(bb));
    if (na != nb || (na > 0 && memcmp(ba, bb, (size_t)na) != 0))
      same = 0;
  } while (same && na > 0);
  close(fa);
  close(fb);
  return same;
}

/* The SEEK_DATA/SEEK_HOLE map, as "data@off+len;…" for comparison. */
static void hole_map(const char *path, char *out, size_t len)
{
  int fd = open(path, O_RDONLY);
  off_t size, off = 0;
  size_t used = 0;

  CHECK(fd >= 0);
  size = lseek(fd, 0, SEEK_END);
  out[0] = '\0';
  while (off < size) {
    off_t data = lseek(fd, off, SEEK_DATA);
    if (data < 0)
      break;
    off_t hole = lseek(fd, data, SEEK_HOLE);
    used += (size_t)snprintf(out + used, len - used, "%lld+%lld;",
                             (long long)data, (long long)(hole - data));
    CHECK(used < len);
    off = hole;
  }
  close(fd);
}

static uint64_t allocated(const char *path)
{
  struct stat sb;
  CHECK(stat(path, &sb) == 0);
  return (uint64_t)sb.st_blocks * 512;
}

static int exists(const char *path)
{
  struct stat sb;
  return lstat(path, &sb) == 0;
}

/* ---- callbacks ------------------------------------------------------ */

typedef struct probe {
  unsigned calls;
  uint64_t last_done, last_total;
  int monotonic;
  uint64_t cancel_at; /* cancel once done >= this (0: never) */
  const char *watch;  /* a path looked for at the cancel */
  int watched;        /* it existed then */
} probe;

static void on_progress(void *user, uint64_t done, uint64_t total)
{
  probe *p = user;
  if (done < p->last_done || done > total)
    p->monotonic = 0;
  p->calls++;
  p->last_done = done;
  p->last_total = total;
}

static int on_cancelled(void *user)
{
  probe *p = user;
  int stop = p->cancel_at && p->last_done >= p->cancel_at;
  if (stop && p->watch)
    p->watched = access(p->watch, F_OK) == 0;
  return stop;
}

static dd_copy_ops ops_for(probe *p)
{
  *p = (probe){.monotonic = 1};
  return (dd_copy_ops){on_progress, on_cancelled, p};
}

/* ---- tests ---------------------------------------------------------- */

static int expect_reflink = -1; /* -1: unknown, don't check */

static const char *method_name(dd_copy_method m)
{
  static const char *const n[] = {"nothing", "reflink", "copy_file_range", "read/write"};
  return n[m];
}

static int copy_new(const char *src, const char *dst, unsigned flags,
                    probe *p, dd_copy_result *res)
{
  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s.part", dst);
  dd_new_file nf = {.tmp_path = tmp, .path = dst, .mode = 0600,
                    .uid = (uid_t)-1, .gid = (gid_t)-1, .xattrs_from = -1,
                    .mark_name = "user.vmsnap.snapshot", .mark_value = "test-uuid"};
  dd_copy_ops ops = ops_for(p);
  int rc = dd_copy_new_file(src, &nf, flags, &ops, res);
  CHECK(!exists(tmp));
  return rc;
}

/* What method a copy with these flags must use on this filesystem. */
static int method_ok(dd_copy_method m, unsigned flags, uint64_t size)
{
  if (size == 0)
    return m == DD_COPY_NOTHING || m == DD_COPY_REFLINK || m == DD_COPY_RANGE;
  if (!(flags & DD_COPY_NO_REFLINK) && expect_reflink == 1)
    return m == DD_COPY_REFLINK;
  if (flags & DD_COPY_NO_RANGE)
    return m == DD_COPY_READWRITE;
  return m == DD_COPY_RANGE || (expect_reflink != 1 && m == DD_COPY_REFLINK);
}

static void check_copy(const char *name, int percent, uint64_t size, unsigned flags)
{
  char *src = path_in(dir, "src.img"), *dst = path_in(dir, "dst.img");
  char map_src[65536], map_dst[65536];
  dd_copy_result res;
  probe p;
  struct stat sb;

  current = name;
  uint64_t data = make_image(src, size, percent);
  unlink(dst);
  int rc = copy_new(src, dst, flags, &p, &res);
  if (rc != 0)
    fprintf(stderr, "%s: %s\n", name, res.message);
  CHECK(rc == 0);
  CHECK(same_content(src, dst));
  CHECK(stat(dst, &sb) == 0 && (sb.st_mode & 07777) == 0600 && (uint64_t)sb.st_size == size);
  hole_map(src, map_src, sizeof(map_src));
  hole_map(dst, map_dst, sizeof(map_dst));
  CHECK(strcmp(map_src, map_dst) == 0);
  /* btrfs may keep a small file inline, so allow a few blocks of slack. */
  CHECK(allocated(dst) <= allocated(src) + 64 * 1024);
  CHECK(res.total == data && res.done == data && res.size == size);
  CHECK(p.monotonic && p.calls >= 1 && p.last_done == data && p.last_total == data);
  if (!method_ok(res.method, flags, size))
    fprintf(stderr, "%s: method %s\n", name, method_name(res.method));
  CHECK(method_ok(res.method, flags, size));
  printf("ok   %-34s %3d%% data, %s, %u progress calls\n", name, percent,
         method_name(res.method), p.calls);
  unlink(src);
  unlink(dst);
  free(src);
  free(dst);
}

/* Read/write path: blocks of written zeroes become holes in the copy. */
static void test_zero_blocks_become_holes(void)
{
  char *src = path_in(dir, "zsrc.img"), *dst = path_in(dir, "zdst.img");
  dd_copy_result res;
  probe p;

  current = "zero blocks become holes (rw)";
  make_image(src, IMG_SIZE, 10);
  int fd = open(src, O_WRONLY);
  CHECK(fd >= 0);
  write_at(fd, 32 * MiB, 8 * MiB, 1); /* allocated, but all zero */
  CHECK(fsync(fd) == 0 && close(fd) == 0);
  CHECK(copy_new(src, dst, DD_COPY_NO_REFLINK | DD_COPY_NO_RANGE, &p, &res) == 0);
  CHECK(same_content(src, dst));
  CHECK(allocated(dst) + 8 * MiB <= allocated(src) + 64 * 1024);
  printf("ok   %-34s src %llu KiB, copy %llu KiB allocated\n", current,
         (unsigned long long)allocated(src) / 1024,
         (unsigned long long)allocated(dst) / 1024);
  unlink(src);
  unlink(dst);
  free(src);
  free(dst);
}

/* Mid-copy, the named temporary exists only where the copy was asked to
 * use one: by default the copy is an unnamed file until it is complete. */
static void test_cancel(unsigned flags, const char *name)
{
  char *src = path_in(dir, "csrc.img"), *dst = path_in(dir, "cdst.img");
  dd_copy_result res;
  probe p;

  current = name;
  make_image(src, IMG_SIZE, 100);
  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s.part", dst);
  dd_new_file nf = {.tmp_path = tmp, .path = dst, .mode = 0600,
                    .uid = (uid_t)-1, .gid = (gid_t)-1, .xattrs_from = -1};
  dd_copy_ops ops = ops_for(&p);
  p.cancel_at = IMG_SIZE / 2;
  p.watch = tmp;
  int rc = dd_copy_new_file(src, &nf, flags, &ops, &res);
  CHECK(rc == -ECANCELED);
  CHECK(p.last_done >= IMG_SIZE / 2 && p.last_done < IMG_SIZE); /* mid-copy */
  CHECK(p.watched == !!(flags & DD_COPY_NAMED_TEMP));
  CHECK(!exists(tmp) && !exists(dst));
  CHECK(strstr(res.message, "cancelled") != NULL);
  printf("ok   %-34s stopped at %llu MiB: %s\n", name,
         (unsigned long long)(p.last_done / MiB), res.message);
  unlink(src);
  free(src);
  free(dst);
}

static void test_no_overwrite(unsigned flags, const char *name)
{
  char *src = path_in(dir, "esrc.img"), *dst = path_in(dir, "edst.img");
  dd_copy_result res;
  probe p;

  current = name;
  make_image(src, 4 * MiB, 100);
  int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 0 && write(fd, "precious", 8) == 8 && close(fd) == 0);
  CHECK(copy_new(src, dst, flags, &p, &res) == -EEXIST);
  struct stat sb;
  CHECK(stat(dst, &sb) == 0 && sb.st_size == 8);
  printf("ok   %-34s %s\n", current, res.message);
  unlink(src);
  unlink(dst);
  free(src);
  free(dst);
}

static void test_reflink_probe(void)
{
  current = "reflink probe";
  int works = dd_reflink_works(dir);
  if (expect_reflink >= 0)
    CHECK(works == expect_reflink);
  printf("ok   %-34s FICLONE %s in %s\n", current, works ? "works" : "does not work", dir);
}

static int count_entries(const char *d)
{
  DIR *dh = opendir(d);
  int n = 0;
  CHECK(dh != NULL);
  for (struct dirent *de; (de = readdir(dh)) != NULL;)
    n += de->d_name[0] != '.';
  closedir(dh);
  return n;
}

static void test_nospc(const char *small, unsigned flags, const char *name)
{
  char *src = path_in(dir, "nsrc.img"), *dst = path_in(small, "ndst.img");
  dd_copy_result res;
  probe p;

  current = name;
  make_image(src, IMG_SIZE, 100);
  int before = count_entries(small);
  int rc = copy_new(src, dst, flags, &p, &res);
  CHECK(rc == -ENOSPC);
  CHECK(!exists(dst) && count_entries(small) == before);
  CHECK(strstr(res.message, small) != NULL); /* names the file */
  printf("ok   %-34s %s\n", name, res.message);
  unlink(src);
  free(src);
  free(dst);
}

/* The first size bytes of dev and file are equal. */
static int blockdev_compare(const char *dev, const char *file, uint64_t size)
{
  static char ba[1 << 20], bb[1 << 20];
  int fa = open(dev, O_RDONLY), fb = open(file, O_RDONLY), same = 1;
  CHECK(fa >= 0 && fb >= 0);
  for (uint64_t off = 0; same && off < size; off += sizeof(ba)) {
    size_t n = size - off < sizeof(ba) ? (size_t)(size - off) : sizeof(ba);
    same = pread(fa, ba, n, (off_t)off) == (ssize_t)n &&
           pread(fb, bb, n, (off_t)off) == (ssize_t)n && memcmp(ba, bb, n) == 0;
  }
  close(fa);
  close(fb);
  return same;
}

/* A source whose size is not a multiple of the sector size, ending in a
 * hole: the device's tail cannot be zeroed with ZERO_RANGE there. */
static void test_blockdev_odd_tail(const char *dev)
{
  char *src = path_in(dir, "bodd.img");
  uint64_t size = 32 * MiB + 1000;
  dd_copy_result res;
  probe p;

  current = "block device: odd-sized sparse source";
  int dfd = open(dev, O_RDWR | O_EXCL);
  CHECK(dfd >= 0);
  write_at(dfd, 0, 33 * MiB, 0);
  make_image(src, size, 10);
  int sfd = open(src, O_RDONLY);
  dd_copy_ops ops = ops_for(&p);
  CHECK(dd_copy_fd(sfd, src, dfd, dev, 0, &ops, &res) == 0);
  close(sfd);
  close(dfd);
  CHECK(blockdev_compare(dev, src, size));
  printf("ok   %-34s %llu bytes, tail zeroed\n", current, (unsigned long long)size);
  unlink(src);
  free(src);
}

/* Into a device (holes must be zeroed over old junk), and back out of it
 * into a file (zero blocks must stay holes). */
static void test_blockdev(const char *dev)
{
  char *src = path_in(dir, "bsrc.img"), *back = path_in(dir, "bback.img");
  dd_copy_result res;
  probe p;
  uint64_t devsize;

  current = "block device: file -> device";
  int dfd = open(dev, O_RDWR | O_EXCL);
  CHECK(dfd >= 0 && dd_fd_size(dfd, &devsize) == 0 && devsize >= IMG_SIZE);
  write_at(dfd, 0, IMG_SIZE, 0); /* junk that the holes must erase */
  uint64_t data = make_image(src, IMG_SIZE, 10);
  int sfd = open(src, O_RDONLY);
  dd_copy_ops ops = ops_for(&p);
  int rc = dd_copy_fd(sfd, src, dfd, dev, 0, &ops, &res);
  if (rc)
    fprintf(stderr, "%s\n", res.message);
  CHECK(rc == 0 && res.method == DD_COPY_READWRITE && res.done == data);
  close(sfd);
  close(dfd);
  CHECK(blockdev_compare(dev, src, IMG_SIZE));
  printf("ok   %-34s %s, holes zeroed\n", current, method_name(res.method));

  current = "block device: device -> file";
  rc = copy_new(dev, back, 0, &p, &res);
  if (rc)
    fprintf(stderr, "%s\n", res.message);
  CHECK(rc == 0);
  CHECK(res.total == devsize && res.done == devsize && p.last_done == devsize);
  CHECK(blockdev_compare(dev, back, devsize));
  CHECK(allocated(back) <= data + 64 * 1024); /* zero blocks stayed holes */
  printf("ok   %-34s %llu MiB device -> %llu KiB allocated\n", current,
         (unsigned long long)(devsize / MiB),
         (unsigned long long)(allocated(back) / 1024));
  unlink(src);
  unlink(back);
  free(src);
  free(back);
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench(uint64_t mib)
{
  char *src = path_in(dir, "bench-src.img"), *dst = path_in(dir, "bench-dst.img");
  static const struct { unsigned flags; const char *name; } runs[] = {
    {0, "default"}, {DD_COPY_NO_REFLINK, "no reflink"},
    {DD_COPY_NO_REFLINK | DD_COPY_NO_PARALLEL, "no reflink, one stream"},
    {DD_COPY_NO_REFLINK | DD_COPY_NO_RANGE, "read/write"},
  };
  dd_copy_result res;
  probe p;

  current = "bench";
  make_image(src, mib * MiB, 100);
  for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
    unlink(dst);
    sync();
    double t0 = now();
    CHECK(copy_new(src, dst, runs[i].flags, &p, &res) == 0);
    double t = now() - t0;
    printf("bench %llu MiB dense, %-10s: %-15s %8.3f s  (%.0f MiB/s, incl. fsync)\n",
           (unsigned long long)mib, runs[i].name, method_name(res.method), t,
           (double)mib / t);
  }
  unlink(src);
  unlink(dst);
  free(src);
  free(dst);
}

int main(int argc, char **argv)
{
  const char *small = NULL, *dev = NULL;
  unsigned long bench_mib = 0;

  if (argc < 2) {
    fprintf(stderr, "usage: %s DIR [--reflink yes|no] [--nospc DIR] "
                    "[--blockdev DEV] [--bench MIB]\n", argv[0]);
    return 2;
  }
  dir = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--reflink") == 0)
      expect_reflink = strcmp(argv[i + 1], "yes") == 0;
    else if (strcmp(argv[i], "--nospc") == 0)
      small = argv[i + 1];
    else if (strcmp(argv[i], "--blockdev") == 0)
      dev = argv[i + 1];
    else if (strcmp(argv[i], "--bench") == 0)
      bench_mib = strtoul(argv[i + 1], NULL, 10);
  }
  if (bench_mib) {
    bench(bench_mib);
    return 0;
  }
  test_reflink_probe();
  static const struct { unsigned flags; const char *tag; } paths[] = {
    {0, "default"}, {DD_COPY_NO_REFLINK, "no reflink"},
    {DD_COPY_NO_REFLINK | DD_COPY_NO_PARALLEL, "no reflink, one stream"},
    {DD_COPY_NO_REFLINK | DD_COPY_NO_RANGE, "read/write"},
    {DD_COPY_NAMED_TEMP, "named temporary"},
  };
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    char name[96];
    snprintf(name, sizeof(name), "dense 64 MiB, %s", paths[i].tag);
    check_copy(name, 100, IMG_SIZE, paths[i].flags);
    snprintf(name, sizeof(name), "sparse 64 MiB, %s", paths[i].tag);
    check_copy(name, 10, IMG_SIZE, paths[i].flags);
    snprintf(name, sizeof(name), "all holes 64 MiB, %s", paths[i].tag);
    check_copy(name, 0, IMG_SIZE, paths[i].flags);
    snprintf(name, sizeof(name), "odd size, %s", paths[i].tag);
    check_copy(name, 100, 10 * MiB + 123, paths[i].flags);
    snprintf(name, sizeof(name), "empty file, %s", paths[i].tag);
    check_copy(name, 0, 0, paths[i].flags);
  }
  test_zero_blocks_become_holes();
  test_cancel(DD_COPY_NO_REFLINK, "cancel mid-copy, copy_file_range");
  test_cancel(DD_COPY_NO_REFLINK | DD_COPY_NO_RANGE, "cancel mid-copy, read/write");
  test_cancel(DD_COPY_NO_REFLINK | DD_COPY_NAMED_TEMP, "cancel mid-copy, named temporary");
  test_no_overwrite(0, "never overwrites");
  test_no_overwrite(DD_COPY_NAMED_TEMP, "never overwrites, named temporary");
  if (small) {
    test_nospc(small, 0, "ENOSPC, default");
    test_nospc(small, DD_COPY_NO_RANGE, "ENOSPC, read/write");
    test_nospc(small, DD_COPY_NAMED_TEMP, "ENOSPC, named temporary");
  }
  if (dev) {
    test_blockdev(dev);
    test_blockdev_odd_tail(dev);
  }
  printf("all copy tests passed in %s\n", dir);
  return 0;
}
