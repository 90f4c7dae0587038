/* test_qcow2_image.c — the qcow2 backend's in-process reader and check
 * (plugins/qcow2/image.c) against real images made by qemu-img and
 * qemu-io: every field compared with `qemu-img info --output=json`, and
 * damaged images (truncated, not qcow2, marked corrupt, tables beyond the
 * end) refused with the right class. A missing qemu-img is a FAILURE. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "qcow2.h"
#include "spawn.h"
#include "testutil.h"

typedef struct fixture {
  char *dir;
  char path[512];
} fixture;

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof(*f));
  if (!f || !(f->dir = tu_tempdir())) return -1;
  snprintf(f->path, sizeof(f->path), "%s/img.qcow2", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fixture *f = *state;
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

/* Runs a tool; fails the test unless it exits 0. Returns its stdout. */
static char *run(const char *const argv[])
{
  vmsnap_spawn_opts o = {.struct_size = sizeof o, .capture_stdout = 1};
  vmsnap_spawn_result r = {.struct_size = sizeof r};
  char eb[256] = "";
  int rc = spawn_run(argv, &o, NULL, &r, eb, sizeof eb);
  if (rc || r.exit_status != 0) {
    print_error("%s %s failed (rc %d, status %d): %s %s\n", argv[0], argv[1], rc, r.exit_status, eb,
                r.err_tail);
    free(r.out);
    fail();
  }
  return r.out ? r.out : strdup("");
}

static void run_quiet(const char *const argv[])
{
  free(run(argv));
}

static void create(const char *path, const char *size, const char *opts)
{
  const char *const a[] = {"qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, path, size, NULL};
  run_quiet(a);
}

static void snapshot(const char *path, const char *tag)
{
  const char *const a[] = {"qemu-img", "snapshot", "-c", tag, path, NULL};
  run_quiet(a);
}

static void qio_write(const char *path, const char *cmd)
{
  const char *const a[] = {"qemu-io", "-f", "qcow2", "-c", cmd, path, NULL};
  run_quiet(a);
}

/* qemu-io exits 0 even when a read's pattern does not match: look. */
static void qio_read(const char *path, const char *cmd)
{
  const char *const a[] = {"qemu-io", "-f", "qcow2", "-c", cmd, path, NULL};
  char *out = run(a);
  if (strstr(out, "verification failed") || !strstr(out, "read ")) {
    print_error("qemu-io -c '%s' %s: %s\n", cmd, path, out);
    free(out);
    fail();
  }
  free(out);
}

static int reader(const char *path, q2_info *inf, int check, char *why, size_t len)
{
  q2_image img;
  int rc = q2_image_open(&img, path, why, len);
  if (rc == 0) rc = q2_image_info(&img, inf, why, len);
  if (rc == 0 && check) {
    rc = q2_image_check(&img, why, len);
    if (rc < 0) q2_info_free(inf);
  }
  q2_image_close(&img);
  return rc;
}

static const char *str_or_null(json_t *o, const char *key)
{
  return json_string_value(json_object_get(o, key));
}

static void assert_str_eq_or_null(const char *want, const char *got, const char *what)
{
  if (!want && !got) return;
  if (!want || !got || strcmp(want, got) != 0) {
    print_error("%s: qemu-img says \"%s\", the reader \"%s\"\n", what, want ? want : "(none)",
                got ? got : "(none)");
    fail();
  }
}

/* The reader's q2_info, field by field, against qemu-img info's JSON;
 * and the cheap check passes. Returns the snapshot count. */
static size_t compare_with_qemu_img_check(const char *path, int check)
{
  const char *const a[] = {"qemu-img", "info", "--output=json", "-f", "qcow2", path, NULL};
  char *text = run(a), why[512] = "";
  json_t *root = json_loads(text, 0, NULL), *snaps, *s;
  q2_info inf;
  size_t i;

  assert_non_null(root);
  int rc = reader(path, &inf, check, why, sizeof why);
  if (rc) print_error("reader: %d: %s\n", rc, why);
  assert_int_equal(rc, 0);
  assert_int_equal(inf.virtual_size, json_integer_value(json_object_get(root, "virtual-size")));
  assert_int_equal(inf.cluster_size, json_integer_value(json_object_get(root, "cluster-size")));
  json_t *data = json_object_get(json_object_get(root, "format-specific"), "data");
  assert_int_equal(inf.corrupt, json_is_true(json_object_get(data, "corrupt")));
  assert_int_equal(inf.dirty, json_is_true(json_object_get(root, "dirty-flag")));
  assert_str_eq_or_null(str_or_null(root, "backing-filename"), inf.backing, "backing-filename");
  assert_str_eq_or_null(str_or_null(root, "backing-filename-format"), inf.backing_fmt,
                        "backing-filename-format");
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(inf.file_size, sb.st_size);
  snaps = json_object_get(root, "snapshots");
  assert_int_equal(inf.n, json_array_size(snaps));
  json_array_foreach(snaps, i, s)
  {
    const q2_snap *q = &inf.snaps[i];
    assert_string_equal(q->id, str_or_null(s, "id"));
    assert_string_equal(q->name, str_or_null(s, "name"));
    assert_int_equal(q->vm_state_size, json_integer_value(json_object_get(s, "vm-state-size")));
    assert_int_equal(q->date_sec, json_integer_value(json_object_get(s, "date-sec")));
    assert_int_equal(q->date_nsec, json_integer_value(json_object_get(s, "date-nsec")));
  }
  size_t n = inf.n;
  q2_info_free(&inf);
  json_decref(root);
  free(text);
  return n;
}

static size_t compare_with_qemu_img(const char *path)
{
  return compare_with_qemu_img_check(path, 1);
}

/* The end qemu-img check reports, against q2_image_end. */
static void compare_end(const char *path)
{
  const char *const a[] = {"qemu-img", "check", "--output=json", "-f", "qcow2", path, NULL};
  char *text = run(a), why[512];
  json_t *root = json_loads(text, 0, NULL);
  q2_image img;
  q2_info inf;

  assert_int_equal(q2_image_open(&img, path, why, sizeof why), 0);
  assert_int_equal(q2_image_info(&img, &inf, why, sizeof why), 0);
  assert_int_equal(q2_image_check(&img, why, sizeof why), 0);
  assert_int_equal(q2_image_end(&img),
                   json_integer_value(json_object_get(root, "image-end-offset")));
  q2_info_free(&inf);
  q2_image_close(&img);
  json_decref(root);
  free(text);
}

/* Overwrites len bytes at off (a damaged header, made on purpose). */
static void poke(const char *path, off_t off, const void *bytes, size_t len)
{
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, bytes, len, off), (ssize_t)len);
  close(fd);
}

static void put_be32(unsigned char *p, uint32_t v)
{
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (24 - 8 * i));
}

static void put_be64(unsigned char *p, uint64_t v)
{
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (56 - 8 * i));
}

static void expect_failure(const char *path, int check, int want, const char *needle)
{
  char why[512] = "";
  q2_info inf;
  int rc = reader(path, &inf, check, why, sizeof why);
  if (rc != want || !strstr(why, needle)) {
    print_error("want %d with \"%s\", got %d: %s\n", want, needle, rc, why);
    if (rc == 0) q2_info_free(&inf);
    fail();
  }
}

/* ---- images read like qemu-img reads them ------------------------------- */

static void test_no_snapshots(void **state)
{
  fixture *f = *state;
  create(f->path, "64M", "cluster_size=65536");
  assert_int_equal(compare_with_qemu_img(f->path), 0);
  qio_write(f->path, "write -P 0xab 0 1M");
  assert_int_equal(compare_with_qemu_img(f->path), 0);
  compare_end(f->path);
}

static void test_three_snapshots(void **state)
{
  fixture *f = *state;
  create(f->path, "64M", "cluster_size=65536");
  qio_write(f->path, "write -P 0xab 0 1M");
  snapshot(f->path, "one");
  qio_write(f->path, "write -P 0xcd 4M 1M");
  snapshot(f->path, "vmsnap-two");
  snapshot(f->path, "a tag with spaces and ünïcödé");
  assert_int_equal(compare_with_qemu_img(f->path), 3);
  compare_end(f->path);
}

static void test_duplicate_tags(void **state)
{
  fixture *f = *state;
  create(f->path, "64M", "cluster_size=65536");
  snapshot(f->path, "twin");
  qio_write(f->path, "write -P 0xab 0 1M");
  snapshot(f->path, "twin");
  snapshot(f->path, "other");
  assert_int_equal(compare_with_qemu_img(f->path), 3);
}

/* Long tags make the table (~77 KiB) larger than one read of it: entries
 * straddle the read window and it is refilled mid-table. */
static void test_300_snapshots(void **state)
{
  fixture *f = *state;
  char tag[256];
  create(f->path, "64M", "cluster_size=65536");
  qio_write(f->path, "write -P 0xab 0 1M");
  for (int i = 0; i < 300; i++) {
    snprintf(tag, sizeof tag, "s%03d-%0200d", i, i);
    snapshot(f->path, tag);
  }
  assert_int_equal(compare_with_qemu_img(f->path), 300);
  compare_end(f->path);
}

static void test_version_2(void **state)
{
  fixture *f = *state;
  create(f->path, "64M", "compat=0.10");
  qio_write(f->path, "write -P 0xab 0 1M");
  snapshot(f->path, "old");
  snapshot(f->path, "older");
  assert_int_equal(compare_with_qemu_img(f->path), 2);
  compare_end(f->path);
}

static void test_cluster_sizes(void **state)
{
  fixture *f = *state;
  static const char *const sizes[] = {"cluster_size=4096", "cluster_size=2097152"};
  for (size_t i = 0; i < 2; i++) {
    unlink(f->path);
    create(f->path, "256M", sizes[i]);
    qio_write(f->path, "write -P 0xab 0 1M");
    qio_write(f->path, "write -P 0xab 100M 3M");
    snapshot(f->path, "s1");
    qio_write(f->path, "write -P 0xcd 0 64k");
    assert_int_equal(compare_with_qemu_img(f->path), 1);
    compare_end(f->path);
  }
}

static void test_backing_file(void **state)
{
  fixture *f = *state;
  char base[600], top[600];
  snprintf(base, sizeof base, "%s/base.qcow2", f->dir);
  snprintf(top, sizeof top, "%s/top.qcow2", f->dir);
  create(base, "64M", "cluster_size=65536");
  const char *const a[] = {"qemu-img",   "create", "-q",    "-f", "qcow2", "-b",
                           "base.qcow2", "-F",     "qcow2", top,  NULL};
  run_quiet(a);
  q2_info inf;
  char why[256];
  assert_int_equal(reader(top, &inf, 1, why, sizeof why), 0);
  assert_string_equal(inf.backing, "base.qcow2");
  assert_string_equal(inf.backing_fmt, "qcow2");
  q2_info_free(&inf);
  assert_int_equal(compare_with_qemu_img(top), 0);

  /* Without -F: qemu-img 7.2 will not make one, so the backing format
   * extension is renamed to a type nobody knows (ignored by both). */
  q2_image img;
  assert_int_equal(q2_image_open(&img, top, why, sizeof why), 0);
  off_t off = img.header_length;
  q2_image_close(&img);
  unsigned char ext[4], other[4];
  int fd = open(top, O_RDONLY | O_CLOEXEC);
  for (;; off += 8) { /* the first extension is the backing format */
    assert_int_equal(pread(fd, ext, 4, off), 4);
    if (memcmp(ext, "\xe2\x79\x2a\xca", 4) == 0) break;
    assert_true(off < 4096);
  }
  close(fd);
  put_be32(other, 0x76736e70);
  poke(top, off, other, 4);
  assert_int_equal(reader(top, &inf, 1, why, sizeof why), 0);
  assert_string_equal(inf.backing, "base.qcow2");
  assert_null(inf.backing_fmt);
  q2_info_free(&inf);
  assert_int_equal(compare_with_qemu_img(top), 0);
}

/* overlay.c: an empty overlay written in-process is what qemu-img would
 * accept as one: `qemu-img check` finds nothing, the reader and qemu-img
 * info agree, data reads through from the backing file, and writes land in
 * the overlay only. Sizes and cluster sizes it does not take are refused
 * with EINVAL (the caller then runs qemu-img create). */
static void test_overlay_write(void **state)
{
  fixture *f = *state;
  char base[600], top[600];
  static const uint64_t clusters[] = {512, 4096, 65536, 2u << 20};
  static const uint64_t sizes[] = {1u << 20, 256u << 20, 3ull << 30, 1ull << 40};
  snprintf(base, sizeof base, "%s/base.qcow2", f->dir);
  snprintf(top, sizeof top, "%s/top.qcow2", f->dir);
  create(base, "1T", "cluster_size=65536");
  qio_write(base, "write -P 0x5a 0 128k");
  for (size_t c = 0; c < 4; c++)
    for (size_t s = 0; s < 4; s++) {
      unlink(top);
      int rc = q2_overlay_write(top, base, sizes[s], clusters[c]);
      if (clusters[c] == 512 && sizes[s] > (1u << 30)) { /* L1 beyond one refcount block */
        assert_int_equal(rc, -1);
        assert_int_equal(errno, EINVAL);
        continue;
      }
      assert_int_equal(rc, 0);
      const char *const chk[] = {"qemu-img", "check", "-q", "-f", "qcow2", top, NULL};
      run_quiet(chk);
      q2_info inf;
      char why[256];
      assert_int_equal(reader(top, &inf, 1, why, sizeof why), 0);
      assert_string_equal(inf.backing, base);
      assert_string_equal(inf.backing_fmt, "qcow2");
      assert_int_equal(inf.virtual_size, sizes[s]);
      assert_int_equal(inf.cluster_size, clusters[c]);
      assert_int_equal(inf.n, 0);
      q2_info_free(&inf);
      assert_int_equal(compare_with_qemu_img(top), 0);
      qio_read(top, sizes[s] >= (128u << 10) ? "read -P 0x5a 0 64k" : "read -P 0x5a 0 1k");
      qio_write(top, "write -P 0x77 0 4k");
      qio_read(top, "read -P 0x77 0 4k");
      run_quiet(chk);
    }
  qio_read(base, "read -P 0x5a 0 128k"); /* the backing file is untouched */
  unlink(top);
  assert_int_equal(q2_overlay_write(top, base, 1u << 20, 65536 + 1), -1);
  assert_int_equal(errno, EINVAL);
  assert_int_equal(q2_overlay_write(top, "", 1u << 20, 65536), -1);
  assert_int_equal(q2_overlay_write(top, base, 0, 65536), -1);
  assert_int_equal(q2_overlay_write(base, base, 1u << 20, 65536), -1); /* never over a file */
  assert_int_equal(errno, EEXIST);
}

/* Extended L2 entries, compressed clusters, an image left dirty (lazy
 * refcounts, qemu-io aborted): read and checked like the others. */
static void test_features(void **state)
{
  fixture *f = *state;
  char src[600];
  snprintf(src, sizeof src, "%s/src.qcow2", f->dir);

  create(f->path, "64M", "extended_l2=on,cluster_size=65536");
  qio_write(f->path, "write -P 0xab 0 1M");
  snapshot(f->path, "s1");
  qio_write(f->path, "write -P 0xcd 8k 8k");
  assert_int_equal(compare_with_qemu_img(f->path), 1);
  compare_end(f->path);

  create(src, "64M", "cluster_size=65536");
  qio_write(src, "write -P 0xab 0 4M");
  unlink(f->path);
  const char *const c[] = {"qemu-img", "convert", "-c", "-f",    "qcow2",
                           "-O",       "qcow2",   src,  f->path, NULL};
  run_quiet(c);
  snapshot(f->path, "compressed");
  assert_int_equal(compare_with_qemu_img(f->path), 1);

  unlink(f->path);
  create(f->path, "64M", "lazy_refcounts=on");
  const char *const d[] = {"qemu-io", "-f",    "qcow2", "-c", "write -P 0xab 0 1M",
                           "-c",      "abort", f->path, NULL};
  vmsnap_spawn_opts o = {.struct_size = sizeof o};
  vmsnap_spawn_result r = {.struct_size = sizeof r};
  char eb[256];
  assert_int_equal(spawn_run(d, &o, NULL, &r, eb, sizeof eb), 0); /* it dies of SIGABRT */
  q2_info inf;
  assert_int_equal(reader(f->path, &inf, 1, eb, sizeof eb), 0);
  assert_true(inf.dirty);
  q2_info_free(&inf);
  assert_int_equal(compare_with_qemu_img(f->path), 0);
}

/* A 4 GiB image whose active L1 maps every cluster (metadata
 * preallocation: the 8 L2 tables full): the check reads them all. */
static void test_check_cost(void **state)
{
  fixture *f = *state;
  struct timespec t0, t1;
  char why[256];
  q2_info inf;
  double best = 1e9;

  create(f->path, "4G", "cluster_size=65536,preallocation=metadata");
  for (int r = 0; r < 5; r++) {
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = reader(f->path, &inf, 1, why, sizeof why);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(rc, 0);
    q2_info_free(&inf);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (ms < best) best = ms;
  }
  print_message("open + info + check of a fully mapped 4 GiB image: %.3f ms\n", best);
  /* The budget is 1 ms; ASan builds and busy machines get slack. */
  assert_true(best < 50);
}

/* ---- images refused ------------------------------------------------------ */

static void test_truncated_half(void **state)
{
  fixture *f = *state;
  struct stat sb;
  create(f->path, "64M", "cluster_size=65536");
  for (int i = 0; i < 4; i++) {
    char cmd[64];
    snprintf(cmd, sizeof cmd, "write -P 0xab %dM 1M", i * 16);
    qio_write(f->path, cmd);
  }
  assert_int_equal(stat(f->path, &sb), 0);
  assert_int_equal(truncate(f->path, sb.st_size / 2), 0);
  /* the table reads (no snapshot table to lose), the check does not */
  q2_info inf;
  char why[256];
  assert_int_equal(reader(f->path, &inf, 0, why, sizeof why), 0);
  q2_info_free(&inf);
  expect_failure(f->path, 1, Q2_IMG_DAMAGED, "truncated");

  /* with snapshots, the snapshot table at the end is gone too */
  unlink(f->path);
  create(f->path, "64M", "cluster_size=65536");
  qio_write(f->path, "write -P 0xab 0 1M");
  snapshot(f->path, "s1");
  qio_write(f->path, "write -P 0xcd 0 1M");
  snapshot(f->path, "s2");
  assert_int_equal(stat(f->path, &sb), 0);
  assert_int_equal(truncate(f->path, sb.st_size / 2), 0);
  expect_failure(f->path, 0, Q2_IMG_DAMAGED, "truncated");
}

static void test_not_qcow2(void **state)
{
  fixture *f = *state;
  tu_write_file(f->path, 0, 1 << 20);
  expect_failure(f->path, 1, Q2_IMG_NOT_QCOW2, "signature");
  tu_write_file(f->path, 'Q', 2);
  expect_failure(f->path, 0, Q2_IMG_NOT_QCOW2, "signature");
  tu_write_file(f->path, 0, 0);
  expect_failure(f->path, 0, Q2_IMG_NOT_QCOW2, "signature");
  /* the signature alone: a header cut short */
  tu_write_file(f->path, 0, 0);
  poke(f->path, 0, "QFI\xfb\0\0\0\3", 8);
  expect_failure(f->path, 0, Q2_IMG_DAMAGED, "truncated");
}

static void test_corrupt_bit(void **state)
{
  fixture *f = *state;
  create(f->path, "64M", "cluster_size=65536");
  snapshot(f->path, "s1");
  poke(f->path, 79, "\x02", 1); /* incompatible features, bit 1 */
  assert_int_equal(compare_with_qemu_img_check(f->path, 0), 1);
  q2_info inf;
  char why[256];
  assert_int_equal(reader(f->path, &inf, 0, why, sizeof why), 0);
  assert_true(inf.corrupt);
  assert_int_equal(inf.n, 1);
  q2_info_free(&inf);
  expect_failure(f->path, 1, Q2_IMG_DAMAGED, "marked it corrupt");
}

static void test_snapshot_table_beyond_eof(void **state)
{
  fixture *f = *state;
  unsigned char h[12];
  create(f->path, "64M", "cluster_size=65536");
  put_be32(h, 2);
  put_be64(h + 4, 1ull << 30);
  poke(f->path, 60, h, 12); /* nb_snapshots, snapshots_offset */
  expect_failure(f->path, 0, Q2_IMG_DAMAGED, "beyond the end of the file");
}

static void test_absurd_headers(void **state)
{
  fixture *f = *state;
  unsigned char b[8];
  create(f->path, "64M", "cluster_size=65536");
  put_be32(b, 100000);
  poke(f->path, 60, b, 4); /* nb_snapshots */
  expect_failure(f->path, 0, Q2_IMG_DAMAGED, "snapshots");

  unlink(f->path);
  create(f->path, "64M", "cluster_size=65536");
  put_be64(b, 1ull << 5);
  poke(f->path, 72, b, 8); /* an unknown incompatible feature */
  expect_failure(f->path, 0, Q2_IMG_UNSUPPORTED, "0x20");

  unlink(f->path);
  create(f->path, "64M", "cluster_size=65536");
  put_be32(b, 4);
  poke(f->path, 4, b, 4); /* version 4 */
  expect_failure(f->path, 0, Q2_IMG_UNSUPPORTED, "version 4");

  unlink(f->path);
  create(f->path, "64M", "cluster_size=65536");
  put_be32(b, 0x7fffffff);
  poke(f->path, 36, b, 4); /* l1_size */
  expect_failure(f->path, 0, Q2_IMG_DAMAGED, "L1");

  unlink(f->path);
  create(f->path, "64M", "cluster_size=65536");
  put_be64(b, 1ull << 40);
  poke(f->path, 40, b, 8); /* l1_table_offset beyond the end */
  expect_failure(f->path, 1, Q2_IMG_DAMAGED, "beyond the end");

  /* a snapshot entry with a 60000-byte name */
  unlink(f->path);
  create(f->path, "64M", "cluster_size=65536");
  snapshot(f->path, "s1");
  q2_image img;
  char why[256];
  assert_int_equal(q2_image_open(&img, f->path, why, sizeof why), 0);
  off_t sn = (off_t)img.snapshots_offset;
  q2_image_close(&img);
  b[0] = 0xea, b[1] = 0x60;
  poke(f->path, sn + 14, b, 2);
  expect_failure(f->path, 0, Q2_IMG_DAMAGED, "name of 60000 bytes");
}

int main(void)
{
  char *p = spawn_find_program("qemu-img"), *q = spawn_find_program("qemu-io");
  if (!p || !q) {
    fprintf(stderr, "qemu-img and qemu-io are needed: apt-get install -y qemu-utils\n");
    return 1;
  }
  free(p);
  free(q);
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_no_snapshots),
      T(test_three_snapshots),
      T(test_duplicate_tags),
      T(test_300_snapshots),
      T(test_version_2),
      T(test_cluster_sizes),
      T(test_backing_file),
      T(test_overlay_write),
      T(test_features),
      T(test_check_cost),
      T(test_truncated_half),
      T(test_not_qcow2),
      T(test_corrupt_bit),
      T(test_snapshot_table_beyond_eof),
      T(test_absurd_headers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
