/* overlay.c — a new, empty qcow2 overlay written in-process.
 *
 * An external snapshot (and a revert to one) needs an empty image backed
 * by a layer: what `qemu-img create -f qcow2 -b LAYER -F qcow2` makes.
 * Starting qemu-img costs more than everything else in the op, and the
 * image is small and fully specified (QEMU's docs/interop/qcow2.txt), so
 * it is written here: a version 3 header naming the backing file and its
 * format, a refcount table with one refcount block, and an empty L1 table.
 * Layout, one cluster each (the L1 table as many as it needs):
 *   0: header, header extensions (backing format, end), backing name
 *   1: refcount table (one entry: cluster 2)
 *   2: refcount block (16-bit refcounts: clusters 0..3+L1-1 are used)
 *   3: L1 table, all zero (nothing allocated: everything reads through)
 * The tests check every image with `qemu-img check` and read data through
 * it with qemu-io. */
#define _GNU_SOURCE
#include "qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define Q2_MAGIC 0x514649fbu          /* "QFI\xfb" */
#define Q2_EXT_BACKING_FMT 0xe2792acau
#define Q2_HEADER_LENGTH 112          /* version 3 with the compression type */

static void be32(unsigned char *p, uint32_t v)
{
  for (int i = 3; i >= 0; i--, v >>= 8) p[i] = (unsigned char)v;
}

static void be64(unsigned char *p, uint64_t v)
{
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (unsigned char)v;
}

static void be16(unsigned char *p, uint16_t v)
{
  p[0] = (unsigned char)(v >> 8);
  p[1] = (unsigned char)v;
}

/* Returns 0, or -1 with errno set (EINVAL: sizes vmsnap does not write). */
int q2_overlay_write(const char *path, const char *backing, uint64_t size, uint64_t cluster)
{
  unsigned bits = 0;
  while (bits < 22 && (1ull << bits) < cluster) bits++;
  size_t blen = strlen(backing);
  /* 512 B .. 2 MiB clusters, as QEMU; the header and names in cluster 0. */
  if ((1ull << bits) != cluster || bits < 9 || bits > 21 || size == 0 || blen == 0 ||
      blen > 1023 || Q2_HEADER_LENGTH + 16 + 8 + blen > cluster) {
    errno = EINVAL;
    return -1;
  }
  uint64_t l2_span = cluster * (cluster / 8); /* bytes one L2 table maps */
  uint64_t l1_size = (size + l2_span - 1) / l2_span;
  uint64_t l1_clusters = (l1_size * 8 + cluster - 1) / cluster;
  uint64_t used = 3 + l1_clusters;
  if (l1_size > (32u << 20) / 8 || used > cluster / 2) { /* one refcount block covers them */
    errno = EINVAL;
    return -1;
  }
  size_t total = (size_t)(used * cluster);
  unsigned char *img = calloc(1, total);
  if (!img) return -1;

  unsigned char *h = img;
  size_t ext = Q2_HEADER_LENGTH, name_off = ext + 8 + 8 + 8; /* fmt ext (5 -> 8), end */
  be32(h + 0, Q2_MAGIC);
  be32(h + 4, 3);                        /* version */
  be64(h + 8, name_off);                 /* backing_file_offset */
  be32(h + 16, (uint32_t)blen);          /* backing_file_size */
  be32(h + 20, bits);                    /* cluster_bits */
  be64(h + 24, size);                    /* size */
  be32(h + 32, 0);                       /* crypt_method */
  be32(h + 36, (uint32_t)l1_size);       /* l1_size */
  be64(h + 40, 3 * cluster);             /* l1_table_offset */
  be64(h + 48, cluster);                 /* refcount_table_offset */
  be32(h + 56, 1);                       /* refcount_table_clusters */
  /* nb_snapshots, snapshots_offset, the feature bitmaps: 0 */
  be32(h + 96, 4);                       /* refcount_order: 16-bit */
  be32(h + 100, Q2_HEADER_LENGTH);       /* header_length */
  /* h[104]: compression type 0 (zlib), then padding */
  be32(h + ext, Q2_EXT_BACKING_FMT);
  be32(h + ext + 4, 5);
  memcpy(h + ext + 8, "qcow2", 5);
  /* the end-of-extensions marker: 8 zero bytes at ext + 16 */
  memcpy(h + name_off, backing, blen);

  be64(img + cluster, 2 * cluster);      /* refcount table -> block */
  for (uint64_t c = 0; c < used; c++) be16(img + 2 * cluster + 2 * c, 1);

  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    free(img);
    return -1;
  }
  size_t done = 0;
  while (done < total) {
    ssize_t w = pwrite(fd, img + done, total - done, (off_t)done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int err = w < 0 ? errno : EIO;
      close(fd);
      unlink(path);
      free(img);
      errno = err;
      return -1;
    }
    done += (size_t)w;
  }
  free(img);
  if (close(fd) < 0) {
    int err = errno;
    unlink(path);
    errno = err;
    return -1;
  }
  return 0;
}
