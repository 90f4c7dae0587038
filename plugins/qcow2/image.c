/* image.c — a qcow2 image's header and snapshot table read in-process,
 * and a cheap check that its metadata lies inside the file.
 *
 * Why not qemu-img: every qemu-img start costs 4–5 ms, and `qemu-img
 * check` walks every snapshot's L2 tables and rebuilds all refcounts (282
 * ms with 500 snapshots). An op needs only the table and a sanity check.
 *
 * Read-only (O_RDONLY, pread), written from the public format description
 * (QEMU's docs/interop/qcow2.txt): all fields big-endian, versions 2 and 3.
 * Everything read from the file is distrusted: every offset and size is
 * checked against the file's size and against QEMU's own limits before
 * it is used, so a damaged or hostile image gives an error, never a read
 * outside what was asked for or a huge allocation. No lock is taken: the
 * caller decides whether a QEMU holding the image matters (q2_image_in_use).
 */
#define _GNU_SOURCE
#include "qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* QEMU's limits (block/qcow2.h): past them QEMU refuses the image too. */
#define MAX_SNAPSHOTS 65536u
#define MAX_SNAPSHOTS_BYTES (64u << 20) /* the whole snapshot table */
#define MAX_SNAPSHOT_EXTRA 1024u
#define MAX_SNAPSHOT_TEXT 1024u /* an ID or a name */
#define MAX_L1_BYTES (32u << 20)
#define MAX_REFTABLE_BYTES (8u << 20)
#define MAX_BACKING_NAME 1023u
#define MIN_CLUSTER_BITS 9
#define MAX_CLUSTER_BITS 21 /* 2 MiB: QEMU opens nothing larger */

#define INCOMPAT_DIRTY (1ull << 0)
#define INCOMPAT_CORRUPT (1ull << 1)
#define INCOMPAT_DATA_FILE (1ull << 2)
#define INCOMPAT_COMPRESSION (1ull << 3) /* zstd: only the data differs */
#define INCOMPAT_EXTL2 (1ull << 4)       /* 128-bit L2 entries */
#define INCOMPAT_KNOWN 0x1full

#define EXT_END 0x00000000u
#define EXT_BACKING_FMT 0xe2792acau
#define EXT_DATA_FILE 0x44415441u

#define L1E_OFFSET 0x00fffffffffffe00ull
#define L1E_RESERVED 0x7f000000000001feull
#define L2E_OFFSET 0x00fffffffffffe00ull
#define L2E_COMPRESSED (1ull << 62)
#define RTE_RESERVED 0x1ffull

/* What one read of header or table asks for: the header and its
 * extensions fit in 64 KiB, as does the table of hundreds of snapshots.
 * An op opens the image three times; 256 KiB reads cost 0.25-0.4 ms of
 * copying more per create or delete (measured interleaved). */
#define CHUNK (64u << 10)
#define L2_CHUNK (4u << 20) /* L2 tables read in runs of at most this */

/* ---- reading -------------------------------------------------------- */

static uint64_t be64(const unsigned char *p)
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

static uint32_t be32(const unsigned char *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t be16(const unsigned char *p)
{
  return (uint16_t)(p[0] << 8 | p[1]);
}

__attribute__((format(printf, 4, 5))) static int fail(int code, char *err, size_t len,
                                                      const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  if (err && len) vsnprintf(err, len, fmt, ap);
  va_end(ap);
  return code;
}

/* Reads exactly len bytes at off into dst; a short read is a truncated
 * file (the caller checked the size, so the file shrank meanwhile). */
static int read_exact(q2_image *img, void *dst, size_t len, uint64_t off, const char *what,
                      char *err, size_t elen)
{
  size_t got = 0;

  while (got < len) {
    ssize_t n = pread(img->fd, (char *)dst + got, len - got, (off_t)(off + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      img->err_no = errno;
      return fail(Q2_IMG_IO, err, elen, "cannot read %s (%zu bytes at offset %" PRIu64 "): %s",
                  what, len, off, strerror(errno));
    }
    if (n == 0)
      return fail(Q2_IMG_DAMAGED, err, elen,
                  "%s (offset %" PRIu64 ", %zu bytes) ends beyond the end of the file: the "
                  "image is truncated",
                  what, off, len);
    got += (size_t)n;
  }
  return 0;
}

/* [off, off + len) must lie inside the file. */
static int inside(const q2_image *img, uint64_t off, uint64_t len, const char *what, char *err,
                  size_t elen)
{
  if (off <= img->file_size && len <= img->file_size - off) return 0;
  return fail(Q2_IMG_DAMAGED, err, elen,
              "%s (offset %" PRIu64 ", %" PRIu64 " bytes) ends beyond the end of the file "
              "(%" PRIu64 " bytes): the image is truncated",
              what, off, len, img->file_size);
}

/* A pointer to [off, off + len) of the file through the read cache: one
 * pread of CHUNK (or len) serves the header and the snapshot table. */
static int view(q2_image *img, uint64_t off, size_t len, const unsigned char **p, const char *what,
                char *err, size_t elen)
{
  int rc;

  if ((rc = inside(img, off, len, what, err, elen)) < 0) return rc;
  if (off < img->buf_off || off + len > img->buf_off + img->buf_len) {
    size_t want = len > CHUNK ? len : CHUNK;
    if (want > img->file_size - off) want = (size_t)(img->file_size - off);
    if (want > img->buf_cap) {
      unsigned char *b = realloc(img->buf, want);
      if (!b) return fail(Q2_IMG_NOMEM, err, elen, "out of memory reading %s", what);
      img->buf = b;
      img->buf_cap = want;
    }
    img->buf_len = 0;
    if ((rc = read_exact(img, img->buf, want, off, what, err, elen)) < 0) return rc;
    img->buf_off = off;
    img->buf_len = want;
  }
  *p = img->buf + (off - img->buf_off);
  return 0;
}

static uint64_t file_size(int fd, const struct stat *sb)
{
  uint64_t size = 0;

  if (S_ISBLK(sb->st_mode)) return ioctl(fd, BLKGETSIZE64, &size) < 0 ? 0 : size;
  return sb->st_size > 0 ? (uint64_t)sb->st_size : 0;
}

/* ---- the header ------------------------------------------------------ */

static int parse_header(q2_image *img, char *err, size_t elen)
{
  const unsigned char *h;
  int rc;

  if (img->file_size >= 4 && (rc = view(img, 0, 4, &h, "the header", err, elen)) < 0) return rc;
  if (img->file_size < 4 || memcmp(h, "QFI\xfb", 4) != 0)
    return fail(Q2_IMG_NOT_QCOW2, err, elen,
                "it does not start with the qcow2 signature \"QFI\\xfb\"");
  if ((rc = view(img, 0, 8, &h, "the header", err, elen)) < 0) return rc;
  img->version = be32(h + 4);
  if (img->version != 2 && img->version != 3)
    return fail(Q2_IMG_UNSUPPORTED, err, elen,
                "qcow2 version %" PRIu32 " (vmsnap reads versions 2 and 3)", img->version);
  if ((rc = view(img, 0, img->version == 2 ? 72 : 104, &h, "the header", err, elen)) < 0) return rc;
  img->backing_offset = be64(h + 8);
  img->backing_size = be32(h + 16);
  img->cluster_bits = be32(h + 20);
  img->virtual_size = be64(h + 24);
  img->crypt_method = be32(h + 32);
  img->l1_size = be32(h + 36);
  img->l1_offset = be64(h + 40);
  img->refcount_table_offset = be64(h + 48);
  img->refcount_table_clusters = be32(h + 56);
  img->nb_snapshots = be32(h + 60);
  img->snapshots_offset = be64(h + 64);
  img->refcount_order = 4;
  img->header_length = 72;
  if (img->version == 3) {
    img->incompat = be64(h + 72);
    img->refcount_order = be32(h + 96);
    img->header_length = be32(h + 100);
  }
  if (img->cluster_bits < MIN_CLUSTER_BITS || img->cluster_bits > MAX_CLUSTER_BITS)
    return fail(Q2_IMG_UNSUPPORTED, err, elen,
                "a cluster size of 2^%" PRIu32 " bytes (QEMU reads 512 bytes to 2 MiB)",
                img->cluster_bits);
  img->cluster_size = 1ull << img->cluster_bits;
  if (img->incompat & ~INCOMPAT_KNOWN)
    return fail(Q2_IMG_UNSUPPORTED, err, elen,
                "incompatible feature bits 0x%" PRIx64 " that vmsnap does not know (a newer "
                "QEMU made it)",
                (uint64_t)(img->incompat & ~INCOMPAT_KNOWN));
  if ((img->incompat & INCOMPAT_EXTL2) && img->cluster_bits < 14)
    return fail(Q2_IMG_DAMAGED, err, elen, "extended L2 entries with clusters below 16 KiB");
  if (img->version == 3 && (img->header_length < 104 || img->header_length % 8 ||
                            img->header_length > img->cluster_size))
    return fail(Q2_IMG_DAMAGED, err, elen, "a header length of %" PRIu32 " bytes",
                img->header_length);
  if (img->refcount_order > 6)
    return fail(Q2_IMG_DAMAGED, err, elen, "a refcount order of %" PRIu32 " (at most 6)",
                img->refcount_order);
  if (img->crypt_method > 2)
    return fail(Q2_IMG_UNSUPPORTED, err, elen, "encryption method %" PRIu32, img->crypt_method);
  return 0;
}

static size_t l2_entry_size(const q2_image *img)
{
  return img->incompat & INCOMPAT_EXTL2 ? 16 : 8;
}

/* The sizes the header claims, against QEMU's limits (no file access). */
static int header_limits(const q2_image *img, char *err, size_t elen)
{
  uint64_t cs = img->cluster_size, l2_span = cs * (cs / l2_entry_size(img));
  uint64_t l1_need = img->virtual_size / l2_span + (img->virtual_size % l2_span != 0);

  if ((uint64_t)img->l1_size * 8 > MAX_L1_BYTES)
    return fail(Q2_IMG_DAMAGED, err, elen,
                "an active L1 table of %" PRIu32 " entries (QEMU's limit: 32 MiB)", img->l1_size);
  if (img->l1_size < l1_need)
    return fail(Q2_IMG_DAMAGED, err, elen,
                "an active L1 table of %" PRIu32 " entries, too small for a virtual size of "
                "%" PRIu64 " bytes (%" PRIu64 " needed)",
                img->l1_size, img->virtual_size, l1_need);
  if ((uint64_t)img->refcount_table_clusters * cs > MAX_REFTABLE_BYTES)
    return fail(Q2_IMG_DAMAGED, err, elen,
                "a refcount table of %" PRIu32 " clusters (QEMU's limit: 8 MiB)",
                img->refcount_table_clusters);
  if (img->nb_snapshots > MAX_SNAPSHOTS)
    return fail(Q2_IMG_DAMAGED, err, elen, "%" PRIu32 " snapshots (QEMU's limit: %u)",
                img->nb_snapshots, MAX_SNAPSHOTS);
  if ((img->l1_size && img->l1_offset % cs) || img->refcount_table_offset % cs ||
      (img->nb_snapshots && img->snapshots_offset % cs))
    return fail(Q2_IMG_DAMAGED, err, elen,
                "a table that does not start on a cluster boundary (L1 at %" PRIu64
                ", refcount table at %" PRIu64 ", snapshot table at %" PRIu64 ")",
                img->l1_offset, img->refcount_table_offset, img->snapshots_offset);
  return 0;
}

int q2_image_open(q2_image *img, const char *path, char *err, size_t elen)
{
  struct stat sb;
  int rc;

  memset(img, 0, sizeof(*img));
  img->fd = -1;
  img->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (img->fd < 0 || fstat(img->fd, &sb) < 0) {
    img->err_no = errno;
    rc = fail(Q2_IMG_IO, err, elen, "cannot open it: %s", strerror(errno));
    goto fail;
  }
  img->is_block = S_ISBLK(sb.st_mode);
  img->file_size = file_size(img->fd, &sb);
  if ((rc = parse_header(img, err, elen)) < 0 || (rc = header_limits(img, err, elen)) < 0)
    goto fail;
  return 0;
fail:
  q2_image_close(img);
  return rc;
}

void q2_image_close(q2_image *img)
{
  if (img->fd >= 0) close(img->fd);
  free(img->buf);
  free(img->snap_l1);
  memset(img, 0, sizeof(*img));
  img->fd = -1;
}

/* ---- what the header points to ---------------------------------------- */

static char *text_at(q2_image *img, uint64_t off, size_t len, const char *what, char *err,
                     size_t elen, int *rc)
{
  const unsigned char *p;
  char *s;

  if ((*rc = view(img, off, len, &p, what, err, elen)) < 0) return NULL;
  /* C strings, as QEMU keeps them: a NUL inside ends the text there. */
  if (!(s = strndup((const char *)p, len))) *rc = fail(Q2_IMG_NOMEM, err, elen, "out of memory");
  return s;
}

/* Header extensions: from the end of the header to the backing file name
 * (or the end of the first cluster), 8-byte aligned, type 0 ends them. */
static int read_extensions(q2_image *img, q2_info *out, char *err, size_t elen)
{
  uint64_t off = img->header_length, end = img->cluster_size;
  const unsigned char *p;
  int rc = 0;

  if (img->backing_offset && img->backing_offset < end) end = img->backing_offset;
  if (img->version == 2 && end > img->file_size) end = img->file_size; /* may lack them */
  while (off + 8 <= end) {
    if ((rc = view(img, off, 8, &p, "a header extension", err, elen)) < 0) return rc;
    uint32_t type = be32(p), len = be32(p + 4);
    if (type == EXT_END) break;
    if (len > end - off - 8)
      return fail(Q2_IMG_DAMAGED, err, elen,
                  "header extension 0x%08" PRIx32 " of %" PRIu32 " bytes runs past the first "
                  "cluster",
                  type, len);
    if (type == EXT_BACKING_FMT) {
      if (len > MAX_BACKING_NAME)
        return fail(Q2_IMG_DAMAGED, err, elen, "a backing format name of %" PRIu32 " bytes", len);
      free(out->backing_fmt);
      if (!(out->backing_fmt = text_at(img, off + 8, len, "the backing format", err, elen, &rc)))
        return rc;
    } else if (type == EXT_DATA_FILE) {
      out->data_file = 1;
    }
    off += 8 + ((uint64_t)len + 7) / 8 * 8;
  }
  return 0;
}

static int read_backing(q2_image *img, q2_info *out, char *err, size_t elen)
{
  int rc = 0;

  if (!img->backing_offset) return 0;
  if (img->backing_size > MAX_BACKING_NAME || img->backing_offset >= img->cluster_size ||
      img->backing_size > img->cluster_size - img->backing_offset)
    return fail(Q2_IMG_DAMAGED, err, elen,
                "a backing file name of %" PRIu32 " bytes at offset %" PRIu64
                " (it must fit in the first cluster and in 1023 bytes)",
                img->backing_size, img->backing_offset);
  if (!(out->backing = text_at(img, img->backing_offset, img->backing_size, "the backing file name",
                               err, elen, &rc)))
    return rc;
  if (!*out->backing) { /* an empty name: no backing file, as qemu-img shows it */
    free(out->backing);
    out->backing = NULL;
  }
  return 0;
}

/* One entry of the snapshot table at *off; *off moves past it. */
static int read_snapshot(q2_image *img, uint64_t *off, q2_snap *s, struct q2_snap_l1 *l1, char *err,
                         size_t elen)
{
  const unsigned char *p;
  int rc = 0;

  if ((rc = view(img, *off, 40, &p, "the snapshot table", err, elen)) < 0) return rc;
  l1->offset = be64(p);
  l1->size = be32(p + 8);
  uint16_t id_len = be16(p + 12), name_len = be16(p + 14);
  uint32_t extra = be32(p + 36);
  s->date_sec = be32(p + 16);
  s->date_nsec = be32(p + 20);
  s->vm_state_size = be32(p + 32);
  if (extra > MAX_SNAPSHOT_EXTRA || id_len > MAX_SNAPSHOT_TEXT || name_len > MAX_SNAPSHOT_TEXT)
    return fail(Q2_IMG_DAMAGED, err, elen,
                "a snapshot table entry with %" PRIu32 " bytes of extra data, an ID of %u and "
                "a name of %u bytes (QEMU's limits: 1024 each)",
                extra, id_len, name_len);
  *off += 40;
  if (extra >= 8) {
    if ((rc = view(img, *off, 8, &p, "the snapshot table", err, elen)) < 0) return rc;
    s->vm_state_size = be64(p);
  }
  *off += extra;
  if (!(s->id = text_at(img, *off, id_len, "the snapshot table", err, elen, &rc))) return rc;
  *off += id_len;
  if (!(s->name = text_at(img, *off, name_len, "the snapshot table", err, elen, &rc))) return rc;
  *off += name_len;
  *off = (*off + 7) / 8 * 8;
  return 0;
}

static int read_snapshots(q2_image *img, q2_info *out, char *err, size_t elen)
{
  uint64_t off = img->snapshots_offset;
  int rc;

  if (!img->nb_snapshots) return 0;
  out->snaps = calloc(img->nb_snapshots, sizeof(*out->snaps));
  img->snap_l1 = calloc(img->nb_snapshots, sizeof(*img->snap_l1));
  if (!out->snaps || !img->snap_l1) return fail(Q2_IMG_NOMEM, err, elen, "out of memory");
  for (uint32_t i = 0; i < img->nb_snapshots; i++) {
    rc = read_snapshot(img, &off, &out->snaps[i], &img->snap_l1[i], err, elen);
    /* counted even when incomplete, so that q2_info_free frees it */
    out->n = i + 1;
    if (rc < 0) return rc;
    if (off - img->snapshots_offset > MAX_SNAPSHOTS_BYTES)
      return fail(Q2_IMG_DAMAGED, err, elen,
                  "a snapshot table larger than 64 MiB (QEMU's limit) at snapshot %" PRIu32, i);
  }
  img->snapshots_end = off;
  return 0;
}

int q2_image_info(q2_image *img, q2_info *out, char *err, size_t elen)
{
  int rc;

  memset(out, 0, sizeof(*out));
  out->virtual_size = img->virtual_size;
  out->cluster_size = img->cluster_size;
  out->corrupt = !!(img->incompat & INCOMPAT_CORRUPT);
  out->dirty = !!(img->incompat & INCOMPAT_DIRTY);
  out->data_file = !!(img->incompat & INCOMPAT_DATA_FILE);
  out->file_size = img->file_size;
  if ((rc = read_extensions(img, out, err, elen)) < 0 ||
      (rc = read_backing(img, out, err, elen)) < 0 ||
      (rc = read_snapshots(img, out, err, elen)) < 0) {
    q2_info_free(out);
    return rc;
  }
  if (!out->backing) { /* qemu-img shows a format only with a backing file */
    free(out->backing_fmt);
    out->backing_fmt = NULL;
  }
  return 0;
}

void q2_info_free(q2_info *inf)
{
  for (size_t i = 0; i < inf->n; i++) {
    free(inf->snaps[i].id);
    free(inf->snaps[i].name);
  }
  free(inf->snaps);
  free(inf->backing);
  free(inf->backing_fmt);
  memset(inf, 0, sizeof(*inf));
}

/* ---- the cheap check -------------------------------------------------- */

/* A table of count 8-byte entries at off, read whole (bounded by the
 * header limits: 32 MiB for L1, 8 MiB for refcounts). */
static int read_table(q2_image *img, uint64_t off, uint64_t count, const char *what,
                      unsigned char **out, char *err, size_t elen)
{
  int rc;

  *out = NULL;
  if ((rc = inside(img, off, count * 8, what, err, elen)) < 0 || count == 0) return rc;
  if (!(*out = malloc(count * 8))) return fail(Q2_IMG_NOMEM, err, elen, "out of memory");
  if ((rc = read_exact(img, *out, count * 8, off, what, err, elen)) < 0) {
    free(*out);
    *out = NULL;
  }
  return rc;
}

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The entries of one L2 table: every cluster they map lies in the file. */
static int check_l2(const q2_image *img, const unsigned char *t, uint64_t l2_off, char *err,
                    size_t elen)
{
  size_t step = l2_entry_size(img), n = img->cluster_size / step;
  unsigned cbits = img->cluster_bits;
  uint64_t comp_mask = (1ull << (62 - (cbits - 8))) - 1;

  for (size_t i = 0; i < n; i++) {
    uint64_t e = be64(t + i * step), host;
    if (e & L2E_COMPRESSED) {
      host = e & comp_mask;
      if (host < img->file_size) continue;
    } else {
      host = e & L2E_OFFSET;
      if (!host) continue;
      if (host % img->cluster_size)
        return fail(Q2_IMG_DAMAGED, err, elen,
                    "the L2 table at offset %" PRIu64 " maps a cluster to offset %" PRIu64
                    ", which is not on a cluster boundary",
                    l2_off, host);
      if (host < img->file_size) continue;
    }
    return fail(Q2_IMG_DAMAGED, err, elen,
                "the L2 table at offset %" PRIu64 " maps a %scluster to offset %" PRIu64
                ", beyond the end of the file (%" PRIu64 " bytes): the image is truncated",
                l2_off, e & L2E_COMPRESSED ? "compressed " : "", host, img->file_size);
  }
  return 0;
}

/* The L2 tables the active L1 names (sorted), read in runs of adjacent
 * tables up to L2_CHUNK per pread. */
static int check_l2_tables(q2_image *img, uint64_t *offs, size_t n, char *err, size_t elen)
{
  uint64_t cs = img->cluster_size;
  size_t cap = n * cs < L2_CHUNK ? n * cs : (L2_CHUNK / cs ? L2_CHUNK / cs : 1) * cs;
  unsigned char *buf;
  int rc = 0;

  if (!n) return 0;
  qsort(offs, n, sizeof(*offs), cmp_u64);
  if (!(buf = malloc(cap))) return fail(Q2_IMG_NOMEM, err, elen, "out of memory");
  for (size_t i = 0; i < n && rc == 0;) {
    size_t run = 1;
    while (i + run < n && (run + 1) * cs <= cap && offs[i + run] == offs[i] + run * cs) run++;
    rc = read_exact(img, buf, run * cs, offs[i], "the L2 tables", err, elen);
    for (size_t k = 0; k < run && rc == 0; k++)
      rc = check_l2(img, buf + k * cs, offs[i] + k * cs, err, elen);
    i += run;
    while (rc == 0 && i < n && offs[i] == offs[i - 1]) i++; /* an L2 table shared twice */
  }
  free(buf);
  return rc;
}

static int check_active_l1(q2_image *img, int walk_l2, char *err, size_t elen)
{
  uint64_t cs = img->cluster_size, *offs = NULL;
  unsigned char *l1;
  size_t n = 0;
  int rc = read_table(img, img->l1_offset, img->l1_size, "the active L1 table", &l1, err, elen);

  if (rc < 0) return rc;
  if (img->l1_size && !(offs = malloc(img->l1_size * sizeof(*offs)))) {
    free(l1);
    return fail(Q2_IMG_NOMEM, err, elen, "out of memory");
  }
  for (uint32_t i = 0; i < img->l1_size && rc == 0; i++) {
    uint64_t e = be64(l1 + (size_t)i * 8), off = e & L1E_OFFSET;
    if (e & L1E_RESERVED)
      rc = fail(Q2_IMG_DAMAGED, err, elen,
                "active L1 entry %" PRIu32 " has reserved bits set (0x%016" PRIx64 ")", i, e);
    else if (off && off % cs)
      rc = fail(Q2_IMG_DAMAGED, err, elen,
                "active L1 entry %" PRIu32 " names an L2 table at offset %" PRIu64
                ", not on a cluster boundary",
                i, off);
    else if (off)
      rc = inside(img, off, cs, "an L2 table of the active L1 table", err, elen);
    if (off && rc == 0) offs[n++] = off;
  }
  free(l1);
  if (rc == 0 && walk_l2) rc = check_l2_tables(img, offs, n, err, elen);
  free(offs);
  return rc;
}

static int check_refcount_table(q2_image *img, char *err, size_t elen)
{
  uint64_t cs = img->cluster_size, n = img->refcount_table_clusters * cs / 8;
  unsigned char *t;
  int rc = read_table(img, img->refcount_table_offset, n, "the refcount table", &t, err, elen);

  if (rc < 0) return rc;
  if (n == 0) return fail(Q2_IMG_DAMAGED, err, elen, "an empty refcount table");
  img->last_refblock = 0;
  for (uint64_t i = 0; i < n && rc == 0; i++) {
    uint64_t e = be64(t + i * 8), off = e & ~RTE_RESERVED;
    if (e & RTE_RESERVED || off % cs)
      rc = fail(Q2_IMG_DAMAGED, err, elen,
                "refcount table entry %" PRIu64 " (0x%016" PRIx64 ") is not a cluster-aligned "
                "offset",
                i, e);
    else if (off && (rc = inside(img, off, cs, "a refcount block", err, elen)) == 0) {
      img->last_refblock = off;
      img->last_refblock_index = i;
    }
  }
  free(t);
  return rc;
}

static int check_snapshot_l1s(q2_image *img, char *err, size_t elen)
{
  for (uint32_t i = 0; i < img->nb_snapshots; i++) {
    const struct q2_snap_l1 *l = &img->snap_l1[i];
    if ((uint64_t)l->size * 8 > MAX_L1_BYTES || (l->size && l->offset % img->cluster_size))
      return fail(Q2_IMG_DAMAGED, err, elen,
                  "snapshot %" PRIu32 " of the table has an L1 table of %" PRIu32
                  " entries at offset %" PRIu64 " (too large, or not on a cluster boundary)",
                  i + 1, l->size, l->offset);
    int rc = inside(img, l->offset, (uint64_t)l->size * 8, "the L1 table of a snapshot", err, elen);
    if (rc < 0) return rc;
  }
  return 0;
}

int q2_image_check(q2_image *img, char *err, size_t elen)
{
  int rc;

  if (img->incompat & INCOMPAT_CORRUPT)
    return fail(Q2_IMG_DAMAGED, err, elen, "QEMU has marked it corrupt");
  if (!img->snapshots_end && img->nb_snapshots)
    return fail(Q2_IMG_DAMAGED, err, elen, "its snapshot table was not read (a bug in vmsnap)");
  if ((rc = inside(img, 0, img->cluster_size, "the header cluster", err, elen)) < 0 ||
      (rc = check_refcount_table(img, err, elen)) < 0 ||
      (rc = check_snapshot_l1s(img, err, elen)) < 0)
    return rc;
  /* With an external data file, L2 entries point into that file. */
  return check_active_l1(img, !(img->incompat & INCOMPAT_DATA_FILE), err, elen);
}

/* The end of the last cluster in use by the refcounts: one refcount block
 * read (the last one). The file's size when there is none (a damaged
 * image, or q2_image_check not run). */
uint64_t q2_image_end(q2_image *img)
{
  uint64_t cs = img->cluster_size, bits = 1ull << img->refcount_order;
  uint64_t per_block = cs * 8 / bits;
  unsigned char *b;
  char err[8];

  if (!img->last_refblock || !(b = malloc(cs))) return img->file_size;
  if (read_exact(img, b, cs, img->last_refblock, "a refcount block", err, sizeof(err)) < 0) {
    free(b);
    return img->file_size;
  }
  size_t last = cs;
  while (last > 0 && b[last - 1] == 0) last--;
  uint64_t end = img->file_size;
  if (last > 0) {
    uint64_t byte = last - 1, entry;
    if (bits >= 8) {
      entry = byte / (bits / 8);
    } else { /* sub-byte refcounts: entry k in bits k*bits..., low bits first */
      unsigned hi = 7;
      while (!(b[byte] >> hi & 1)) hi--;
      entry = (byte * 8 + hi) / bits;
    }
    end = (img->last_refblock_index * per_block + entry + 1) * cs;
  }
  free(b);
  return end;
}

/* Whether another process holds the image the way `qemu-img info` without
 * -U would be refused: QEMU (file-posix) marks each permission it holds
 * by a shared OFD lock on byte 100 + bit, and each it does not share on
 * byte 200 + bit. Someone may write (101), or refuses consistent readers
 * (200). Returns 1, 0, or 0 when locks cannot be tested. */
int q2_image_in_use(const q2_image *img)
{
  static const off_t bytes[] = {101, 200};

  for (size_t i = 0; i < sizeof(bytes) / sizeof(bytes[0]); i++) {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = bytes[i], .l_len = 1};
    if (fcntl(img->fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) return 1;
  }
  return 0;
}
