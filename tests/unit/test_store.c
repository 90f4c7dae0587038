/* test_store.c — metadata documents: atomic, durable, private, locked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "testutil.h"

typedef struct fixture {
  char *dir;
  vmsnap_ctx *ctx;
} fixture;

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  f->dir = tu_tempdir();
  f->ctx = tu_ctx(f->dir, 0);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fixture *f = *state;
  vmsnap_ctx_free(f->ctx);
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static mode_t mode_of(const char *path)
{
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return st.st_mode & 07777;
}

static void test_modes_and_roundtrip(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  assert_int_equal(store_open(f->ctx, "vm1", STORE_CREATE, &d, &err), 0);
  json_t *doc = json_pack("{s:s, s:s, s:{s:i, s:i}}", "uuid", "u-1", "name", "s1", "ctime", "sec",
                          5, "nsec", 0);
  assert_int_equal(store_write_snapshot(d, doc, &err), 0);
  assert_int_equal(store_write_domain(d, &err), 0);
  char path[4200];
  snprintf(path, sizeof path, "%s/state", f->dir);
  assert_int_equal(mode_of(path), 0700);
  snprintf(path, sizeof path, "%s/state/domains/vm1", f->dir);
  assert_int_equal(mode_of(path), 0700);
  snprintf(path, sizeof path, "%s/state/domains/vm1/snapshots", f->dir);
  assert_int_equal(mode_of(path), 0700);
  snprintf(path, sizeof path, "%s/state/domains/vm1/snapshots/u-1.json", f->dir);
  assert_int_equal(mode_of(path), 0600);
  snprintf(path, sizeof path, "%s/state/domains/vm1/domain.json", f->dir);
  assert_int_equal(mode_of(path), 0600);
  json_t *arr;
  assert_int_equal(store_load_snapshots(d, &arr, &err), 0);
  assert_int_equal(json_array_size(arr), 1);
  assert_string_equal(jstr(json_array_get(arr, 0), "name"), "s1");
  json_decref(arr);
  json_decref(doc);
  store_close(d);
}

/* A temp file left by a crash mid-write is never read as a snapshot. */
static void test_leftover_temp_ignored(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  assert_int_equal(store_open(f->ctx, "vm2", STORE_CREATE, &d, &err), 0);
  char path[4200];
  snprintf(path, sizeof path, "%s/state/domains/vm2/snapshots/.u-2.json.tmp", f->dir);
  tu_write_file(path, '{', 3);
  json_t *arr;
  assert_int_equal(store_load_snapshots(d, &arr, &err), 0);
  assert_int_equal(json_array_size(arr), 0);
  json_decref(arr);
  store_close(d);
}

typedef struct reader_arg {
  fixture *f;
  volatile int stop;
  int bad;
  int reads;
} reader_arg;

static void *reader(void *p)
{
  reader_arg *a = p;
  char path[4200];
  snprintf(path, sizeof path, "%s/state/domains/vm3/snapshots/u-3.json", a->f->dir);
  while (!a->stop) {
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    if (!doc || json_array_size(json_object_get(doc, "big")) != 200) a->bad++;
    json_decref(doc);
    a->reads++;
  }
  return NULL;
}

/* Readers racing a writer always see a whole document. */
static void test_readers_never_see_half(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  assert_int_equal(store_open(f->ctx, "vm3", STORE_CREATE, &d, &err), 0);
  json_t *doc = json_pack("{s:s, s:s, s:i, s:[]}", "uuid", "u-3", "name", "s", "gen", 0, "big");
  for (int i = 0; i < 200; i++)
    json_array_append_new(json_object_get(doc, "big"), json_string("some padding text here"));
  assert_int_equal(store_write_snapshot(d, doc, &err), 0);
  reader_arg a = {.f = f};
  pthread_t t;
  pthread_create(&t, NULL, reader, &a);
  for (int i = 0; i < 300; i++) {
    json_object_set_new(doc, "gen", json_integer(i));
    assert_int_equal(store_write_snapshot(d, doc, &err), 0);
  }
  a.stop = 1;
  pthread_join(t, NULL);
  assert_true(a.reads > 0);
  assert_int_equal(a.bad, 0);
  json_decref(doc);
  store_close(d);
}

/* A writer in another process holds the lock: BUSY, naming the domain. */
static void test_lock_busy(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  assert_int_equal(store_open(f->ctx, "vm4", STORE_CREATE, &d, &err), 0);
  store_close(d); /* the child takes the lock */
  int ready[2];
  assert_int_equal(pipe(ready), 0);
  pid_t pid = fork();
  if (pid == 0) {
    char path[4200];
    snprintf(path, sizeof path, "%s/state/domains/vm4/lock", f->dir);
    int fd = open(path, O_RDWR);
    flock(fd, LOCK_EX);
    if (write(ready[1], "x", 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  char c;
  assert_int_equal(read(ready[0], &c, 1), 1);
  setenv("VMSNAP_LOCK_TIMEOUT_MS", "200", 1);
  memset(&err, 0, sizeof err);
  assert_int_equal(store_open(f->ctx, "vm4", STORE_WRITE, &d, &err), VMSNAP_E_BUSY);
  assert_non_null(strstr(err.msg, "domain vm4 is busy"));
  /* readers are not blocked by writers */
  assert_int_equal(store_open(f->ctx, "vm4", STORE_READ, &d, &err), 0);
  store_close(d);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  unsetenv("VMSNAP_LOCK_TIMEOUT_MS");
  assert_int_equal(store_open(f->ctx, "vm4", STORE_WRITE, &d, &err), 0);
  store_close(d);
  close(ready[0]);
  close(ready[1]);
}

static void test_journal_blocks_until_recover(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  assert_int_equal(store_open(f->ctx, "vm5", STORE_CREATE, &d, &err), 0);
  assert_int_equal(store_check_no_journal(d, &err), 0);
  json_t *j = json_pack("{s:s, s:{s:s}}", "op", "create", "snapshot", "name", "s9");
  assert_int_equal(store_journal_write(d, j, &err), 0);
  assert_int_equal(store_check_no_journal(d, &err), VMSNAP_E_NEEDS_RECOVER);
  assert_non_null(strstr(err.msg, "interrupted create of snapshot 's9'"));
  assert_non_null(strstr(err.msg, "snapctl recover vm5"));
  assert_int_equal(store_journal_clear(d, &(vs_err){0}), 0);
  memset(&err, 0, sizeof err);
  assert_int_equal(store_check_no_journal(d, &err), 0);
  json_decref(j);
  store_close(d);
}

static void test_damaged_document(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  assert_int_equal(store_open(f->ctx, "vm6", STORE_CREATE, &d, &err), 0);
  char path[4200];
  snprintf(path, sizeof path, "%s/state/domains/vm6/snapshots/u-6.json", f->dir);
  tu_write_file(path, '[', 10);
  json_t *arr;
  assert_int_equal(store_load_snapshots(d, &arr, &err), VMSNAP_E_IO);
  assert_non_null(strstr(err.msg, "u-6.json is damaged"));
  store_close(d);
}

/* A refused first create removes what the store made; a writer that
 * waited for its lock meanwhile opens the domain afresh, and what it writes
 * lands in the domain's directory, not in the removed one. */
typedef struct waiter {
  fixture *f;
  int rc;
} waiter;

static void *second_writer(void *arg)
{
  waiter *w = arg;
  store_domain *d;
  vs_err err = {0};
  w->rc = store_open(w->f->ctx, "gone", STORE_CREATE, &d, &err);
  if (w->rc == 0) {
    json_object_set_new(d->doc, "note", json_string("second"));
    w->rc = store_write_domain(d, &err);
    store_close(d);
  }
  return NULL;
}

static void test_fresh_domain_forgotten(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  char path[4200];
  snprintf(path, sizeof path, "%s/state/domains/gone", f->dir);
  assert_int_equal(store_open(f->ctx, "gone", STORE_CREATE, &d, &err), 0);
  assert_true(d->fresh);
  waiter w = {f, -1};
  pthread_t t;
  pthread_create(&t, NULL, second_writer, &w);
  usleep(100000); /* it waits for our lock */
  store_forget_fresh(d);
  assert_false(tu_exists(path));
  store_close(d);
  pthread_join(t, NULL);
  assert_int_equal(w.rc, 0);
  snprintf(path, sizeof path, "%s/state/domains/gone/domain.json", f->dir);
  assert_true(tu_exists(path));
  /* A domain that records something is never forgotten. */
  assert_int_equal(store_open(f->ctx, "gone", STORE_WRITE, &d, &err), 0);
  assert_false(d->fresh);
  store_forget_fresh(d);
  store_close(d);
  assert_true(tu_exists(path));
}

/* ---- the index behind store_load_snapshots ------------------------------ */

static json_t *snap_doc(const char *uuid, const char *name, const char *parent, int sec)
{
  return json_pack("{s:i, s:s, s:s, s:s?, s:{s:i, s:i}, s:[{s:s, s:s, s:{s:s, s:s, s:s}}]}",
                   "format", 1, "uuid", uuid, "name", name, "parent", parent, "ctime", "sec", sec,
                   "nsec", 0, "disks", "target", "vda", "backend", "qcow2", "data", "tag", name,
                   "layer_backing", "", "image", "/i.qcow2");
}

static void snap_path(fixture *f, const char *dom, const char *file, char *path, size_t len)
{
  snprintf(path, len, "%s/state/domains/%s/snapshots/%s", f->dir, dom, file);
}

/* Small domains keep no index: FILL more documents (of another disk
 * target, created later) make the domain big enough. */
#define FILL 40

/* Three documents (and FILL others) written by one writer session; the
 * index is saved when it closes. */
static void write_three(fixture *f, const char *dom)
{
  store_domain *d;
  vs_err err = {0};
  assert_int_equal(store_open(f->ctx, dom, STORE_CREATE, &d, &err), 0);
  json_t *none; /* an op loads before it writes: the index then knows every file */
  assert_int_equal(store_load_snapshots(d, &none, &err), 0);
  json_decref(none);
  json_t *a = snap_doc("u-a", "a", NULL, 1), *b = snap_doc("u-b", "b", "u-a", 2),
         *c = snap_doc("u-c", "c", "u-b", 3);
  assert_int_equal(store_write_snapshot(d, a, &err), 0);
  store_batch_begin(d);
  assert_int_equal(store_write_snapshot(d, b, &err), 0);
  assert_int_equal(store_write_snapshot(d, c, &err), 0);
  for (int i = 0; i < FILL; i++) {
    char uuid[16], name[16];
    snprintf(uuid, sizeof uuid, "u-f%02d", i);
    snprintf(name, sizeof name, "f%02d", i);
    json_t *x = snap_doc(uuid, name, NULL, 100 + i);
    json_object_set_new(json_array_get(json_object_get(x, "disks"), 0), "target",
                        json_string("vdz"));
    assert_int_equal(store_write_snapshot(d, x, &err), 0);
    json_decref(x);
  }
  assert_int_equal(store_batch_end(d, 0, &err), 0);
  store_close(d);
  json_decref(a);
  json_decref(b);
  json_decref(c);
}

static json_t *load(fixture *f, const char *dom, int mode, store_domain **dp)
{
  vs_err err = {0};
  json_t *arr = NULL;
  assert_int_equal(store_open(f->ctx, dom, mode, dp, &err), 0);
  assert_int_equal(store_load_snapshots(*dp, &arr, &err), 0);
  return arr;
}

typedef struct sib_seen {
  int n;
  char names[8][16];
  char backing[8][16];
} sib_seen;

static int sib_fn(void *user, const char *uuid, const char *name, const char *const *kv)
{
  sib_seen *s = user;
  (void)uuid;
  snprintf(s->names[s->n], sizeof s->names[0], "%s", name);
  for (size_t i = 0; kv[i]; i += 2)
    if (!strcmp(kv[i], "layer_backing")) snprintf(s->backing[s->n], 16, "[%s]", kv[i + 1]);
  s->n++;
  return 0;
}

/* Loaded through the index: light documents, in ctime order, made whole
 * on demand; host->siblings answered from the index, empty values kept. */
static void test_index_light_documents(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  write_three(f, "ix1");
  char path[4200];
  snap_path(f, "ix1", ".index", path, sizeof path);
  assert_int_equal(access(path, F_OK), 0);
  json_t *arr = load(f, "ix1", STORE_READ, &d);
  assert_int_equal(json_array_size(arr), 3 + FILL);
  json_t *b = json_array_get(arr, 1);
  assert_string_equal(jstr(b, "name"), "b");
  assert_string_equal(jstr(b, "parent"), "u-a");
  assert_null(json_object_get(b, "disks")); /* light */
  assert_true(json_is_null(json_object_get(json_array_get(arr, 0), "parent")) ||
              !json_object_get(json_array_get(arr, 0), "parent"));
  sib_seen seen = {0};
  assert_int_equal(store_siblings(d, arr, "u-b", "vda", "qcow2", sib_fn, &seen), 0);
  assert_int_equal(seen.n, 2);
  assert_string_equal(seen.names[0], "a");
  assert_string_equal(seen.backing[0], "[]");
  assert_string_equal(seen.names[1], "c");
  memset(&seen, 0, sizeof seen);
  assert_int_equal(store_siblings(d, arr, NULL, "vdb", "qcow2", sib_fn, &seen), 0);
  assert_int_equal(seen.n, 0);
  assert_int_equal(store_doc(d, b, &err), 0);
  assert_string_equal(jstr(json_object_get(json_array_get(json_object_get(b, "disks"), 0),
                                           "data"), "tag"), "b");
  json_decref(arr);
  store_close(d);
}

/* A light document changed in memory and written keeps everything the
 * file held. */
static void test_index_write_light_keeps_document(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  write_three(f, "ix2");
  json_t *arr = load(f, "ix2", STORE_WRITE, &d);
  json_t *c = json_array_get(arr, 2);
  json_object_set_new(c, "parent", json_string("u-a"));
  assert_int_equal(store_write_snapshot(d, c, &err), 0);
  json_decref(arr);
  store_close(d);
  char path[4200];
  snap_path(f, "ix2", "u-c.json", path, sizeof path);
  json_t *doc = json_load_file(path, 0, NULL);
  assert_non_null(doc);
  assert_string_equal(jstr(doc, "parent"), "u-a");
  assert_int_equal(json_array_size(json_object_get(doc, "disks")), 1);
  json_decref(doc);
  arr = load(f, "ix2", STORE_READ, &d);
  assert_string_equal(jstr(json_array_get(arr, 2), "parent"), "u-a");
  json_decref(arr);
  store_close(d);
}

static char *slurp(const char *path, size_t *len)
{
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  char *buf = malloc(1 << 20);
  *len = fread(buf, 1, 1 << 20, fp);
  fclose(fp);
  return buf;
}

static void spit(const char *path, const char *buf, size_t len)
{
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(buf, 1, len, fp), len);
  fclose(fp);
}

/* The documents are the truth: an index that disagrees with them (an old
 * index put back, as a crash could leave it; documents changed, added or
 * removed behind the store) is not believed for those files, and the next
 * writer writes it again. */
static void test_index_disagrees_with_documents(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  write_three(f, "ix3");
  char ipath[4200], path[4200];
  size_t ilen;
  snap_path(f, "ix3", ".index", ipath, sizeof ipath);
  char *old = slurp(ipath, &ilen);
  /* A writer renames b and re-parents c under a; then the old index is
   * put back. */
  json_t *arr = load(f, "ix3", STORE_WRITE, &d);
  json_t *b = json_array_get(arr, 1), *c = json_array_get(arr, 2);
  json_object_set_new(b, "name", json_string("bb"));
  json_object_set_new(c, "parent", json_string("u-a"));
  store_batch_begin(d);
  assert_int_equal(store_write_snapshot(d, b, &err), 0);
  assert_int_equal(store_write_snapshot(d, c, &err), 0);
  assert_int_equal(store_batch_end(d, 0, &err), 0);
  json_decref(arr);
  store_close(d);
  spit(ipath, old, ilen);
  /* Behind the store: a removed, d added. */
  snap_path(f, "ix3", "u-a.json", path, sizeof path);
  assert_int_equal(unlink(path), 0);
  json_t *nd = snap_doc("u-d", "d", NULL, 4);
  snap_path(f, "ix3", "u-d.json", path, sizeof path);
  assert_int_equal(json_dump_file(nd, path, 0), 0);
  json_decref(nd);
  for (int round = 0; round < 2; round++) {
    arr = load(f, "ix3", round ? STORE_READ : STORE_WRITE, &d);
    assert_int_equal(json_array_size(arr), 3 + FILL);
    assert_string_equal(jstr(json_array_get(arr, 0), "name"), "bb");
    assert_string_equal(jstr(json_array_get(arr, 1), "parent"), "u-a");
    assert_string_equal(jstr(json_array_get(arr, 2), "name"), "d");
    sib_seen seen = {0};
    assert_int_equal(store_siblings(d, arr, NULL, "vda", "qcow2", sib_fn, &seen), 0);
    assert_int_equal(seen.n, 3);
    assert_string_equal(seen.names[0], "bb");
    json_decref(arr);
    store_close(d); /* the writer (round 0) writes the index again */
    size_t nlen;
    char *now = slurp(ipath, &nlen);
    assert_true(nlen != ilen || memcmp(now, old, ilen) != 0);
    assert_non_null(strstr(now, "u-d.json"));
    assert_null(strstr(now, "u-a.json"));
    free(now);
  }
  free(old);
}

/* While the snapshots directory is as the index's writer left it, the
 * index is taken whole: a document changed in place (no rename, so the
 * directory does not notice) still reads as indexed until it is made
 * whole, which proves no file was looked at. A document replaced by
 * rename, as vmsnap and editors do, changes the directory: every file is
 * looked at again. */
static void test_index_trusted_while_dir_unchanged(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  char path[4200], tmp[4300];
  size_t len;
  write_three(f, "ix9");
  /* Clock ticks apart, so that timestamps tell every change from the
   * index's save, also on a kernel with coarse ones (the same mtime for
   * changes within one tick: the limit documented in store_index.c). */
  usleep(20000);
  snap_path(f, "ix9", "u-b.json", path, sizeof path);
  char *text = slurp(path, &len);
  char *at = strstr(text, "\"name\": \"b\"");
  assert_non_null(at);
  at[9] = 'B';
  FILE *fp = fopen(path, "r+b"); /* the same file, rewritten in place */
  assert_non_null(fp);
  assert_int_equal(fwrite(text, 1, len, fp), len);
  fclose(fp);
  free(text);

  json_t *arr = load(f, "ix9", STORE_READ, &d);
  json_t *b = json_array_get(arr, 1);
  assert_string_equal(jstr(b, "name"), "b"); /* as the index has it */
  assert_int_equal(store_doc(d, b, &err), 0);
  assert_string_equal(jstr(b, "name"), "B"); /* the file, once needed whole */
  json_decref(arr);
  store_close(d);

  usleep(20000);
  snap_path(f, "ix9", "u-c.json", path, sizeof path);
  snprintf(tmp, sizeof tmp, "%s.new", path);
  json_t *c = snap_doc("u-c", "c2", "u-b", 3);
  assert_int_equal(json_dump_file(c, tmp, 0), 0);
  json_decref(c);
  assert_int_equal(rename(tmp, path), 0);
  arr = load(f, "ix9", STORE_READ, &d);
  assert_string_equal(jstr(json_array_get(arr, 1), "name"), "B");
  assert_string_equal(jstr(json_array_get(arr, 2), "name"), "c2");
  json_decref(arr);
  store_close(d);
}

/* An op on one snapshot reads only its document and its children's
 * while the index is trusted; what it loads later is the same objects
 * (changes meet in one document); the index answers names. Once the
 * directory changed behind the index, the family is not trusted. */
static void test_index_family(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  json_t *fam = NULL, *all = NULL;
  char path[4200], tmp[4300];
  write_three(f, "ixf");
  usleep(20000); /* clock ticks apart from the index's save (see above) */
  assert_int_equal(store_open(f->ctx, "ixf", STORE_WRITE, &d, &err), 0);
  assert_int_equal(store_load_family(d, "b", &fam, &err), 1);
  assert_int_equal(json_array_size(fam), 2);
  json_t *b = json_array_get(fam, 0), *c = json_array_get(fam, 1);
  assert_string_equal(jstr(b, "name"), "b");
  assert_string_equal(jstr(c, "name"), "c");
  assert_non_null(json_object_get(b, "disks")); /* whole */
  assert_non_null(json_object_get(c, "disks"));
  assert_string_equal(store_index_uuid_named(d, "a"), "u-a");
  assert_string_equal(store_index_name_of(d, "u-a"), "a");
  assert_null(store_index_uuid_named(d, "zz"));
  json_object_set_new(c, "parent", json_string("u-a")); /* as delete re-parents */
  assert_int_equal(store_snapshots(d, &all, &err), 0);
  assert_int_equal(json_array_size(all), 3 + FILL);
  assert_ptr_equal(json_array_get(all, 1), b);
  assert_ptr_equal(json_array_get(all, 2), c);
  assert_string_equal(jstr(json_array_get(all, 2), "parent"), "u-a");
  json_t *again = NULL;
  assert_int_equal(store_snapshots(d, &again, &err), 0);
  assert_ptr_equal(again, all); /* loaded once */
  json_decref(again);
  json_decref(all);
  json_decref(fam);
  assert_int_equal(store_load_family(d, "nosuch", &fam, &err), 1);
  assert_int_equal(json_array_size(fam), 0);
  json_decref(fam);
  store_close(d);

  /* A document replaced behind the store: the directory changed. */
  snap_path(f, "ixf", "u-c.json", path, sizeof path);
  snprintf(tmp, sizeof tmp, "%s.new", path);
  json_t *nc = snap_doc("u-c", "c", "u-b", 3);
  assert_int_equal(json_dump_file(nc, tmp, 0), 0);
  json_decref(nc);
  assert_int_equal(rename(tmp, path), 0);
  assert_int_equal(store_open(f->ctx, "ixf", STORE_WRITE, &d, &err), 0);
  fam = NULL;
  assert_int_equal(store_load_family(d, "b", &fam, &err), 0);
  assert_null(fam);
  store_close(d);
}

/* The records appended to the index file after its base. */
static int appended_records(fixture *f, const char *dom)
{
  char path[4200];
  size_t len, n, baselen;
  snap_path(f, dom, ".index", path, sizeof path);
  char *text = slurp(path, &len);
  char *nl = memchr(text, '\n', len);
  assert_non_null(nl);
  assert_int_equal(sscanf(text, "vmsnap-index 4 %zu %zu", &n, &baselen), 2);
  int recs = 0;
  for (char *p = nl + 1 + baselen; p < text + len; p++) recs += *p == '\n';
  free(text);
  return recs;
}

/* One writer session: loads what the index tells (returns whether it was
 * trusted), then writes doc and removes the document of uuid gone (either
 * may be NULL). */
static int session(fixture *f, const char *dom, json_t *doc, const char *gone)
{
  store_domain *d;
  vs_err err = {0};
  assert_int_equal(store_open(f->ctx, dom, STORE_WRITE, &d, &err), 0);
  int trusted = store_index_trusted(d);
  json_t *all = NULL; /* as an op does when the index cannot tell */
  if (!trusted) assert_int_equal(store_load_snapshots(d, &all, &err), 0);
  json_decref(all);
  if (doc) assert_int_equal(store_write_snapshot(d, doc, &err), 0);
  if (gone) assert_int_equal(store_remove_snapshot(d, gone, &err), 0);
  store_close(d);
  return trusted;
}

static int trusted_now(fixture *f, const char *dom)
{
  store_domain *d;
  vs_err err = {0};
  assert_int_equal(store_open(f->ctx, dom, STORE_READ, &d, &err), 0);
  int trusted = store_index_trusted(d);
  store_close(d);
  return trusted;
}

/* A writer that trusted the index appends its changes (a document written,
 * one removed) instead of writing the index whole; the next loader trusts
 * base + records and sees both changes. */
static void test_index_appended(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  char path[4200];
  write_three(f, "ia1");
  json_t *nd = snap_doc("u-d", "d", "u-c", 4);
  assert_true(session(f, "ia1", nd, "u-a"));
  json_decref(nd);
  assert_int_equal(appended_records(f, "ia1"), 2);
  snap_path(f, "ia1", ".index.w", path, sizeof path);
  assert_int_equal(access(path, F_OK), -1); /* nothing left aside */
  assert_int_equal(store_open(f->ctx, "ia1", STORE_READ, &d, &err), 0);
  assert_true(store_index_trusted(d));
  assert_string_equal(store_index_uuid_named(d, "d"), "u-d");
  assert_null(store_index_uuid_named(d, "a"));
  store_close(d);
  json_t *arr = load(f, "ia1", STORE_READ, &d);
  assert_int_equal(json_array_size(arr), 3 + FILL);
  assert_string_equal(jstr(json_array_get(arr, 0), "name"), "b");
  assert_string_equal(jstr(json_array_get(arr, 2), "name"), "d");
  assert_null(json_object_get(json_array_get(arr, 2), "disks")); /* light: from the record */
  json_decref(arr);
  store_close(d);
}

/* A torn append (a crash's) makes the whole index untrusted; an index left
 * aside by a crash is removed; the next writer writes the index whole. */
static void test_index_torn_append(void **state)
{
  fixture *f = *state;
  store_domain *d;
  char path[4200], aside[4200];
  size_t len;
  write_three(f, "ia2");
  json_t *nd = snap_doc("u-d", "d", "u-c", 4);
  assert_true(session(f, "ia2", nd, NULL));
  json_decref(nd);
  assert_int_equal(appended_records(f, "ia2"), 1);
  snap_path(f, "ia2", ".index", path, sizeof path);
  char *text = slurp(path, &len);
  spit(path, text, len - 10);
  free(text);
  assert_false(trusted_now(f, "ia2"));
  json_t *arr = load(f, "ia2", STORE_READ, &d);
  assert_int_equal(json_array_size(arr), 4 + FILL);
  json_decref(arr);
  store_close(d);
  snap_path(f, "ia2", ".index.w", aside, sizeof aside);
  assert_int_equal(rename(path, aside), 0); /* as a crash leaves it */
  assert_false(session(f, "ia2", NULL, NULL));
  assert_int_equal(access(aside, F_OK), -1);
  assert_int_equal(appended_records(f, "ia2"), 0);
  assert_true(trusted_now(f, "ia2"));
}

/* Records pile up to a bound, then the index is written whole again. */
static void test_index_compaction(void **state)
{
  fixture *f = *state;
  write_three(f, "ia3");
  for (int i = 0; i < 34; i++) {
    char uuid[16], name[16];
    snprintf(uuid, sizeof uuid, "u-g%02d", i);
    snprintf(name, sizeof name, "g%02d", i);
    json_t *doc = snap_doc(uuid, name, NULL, 200 + i);
    if (!session(f, "ia3", doc, NULL)) fail_msg("session %d did not trust the index", i);
    json_decref(doc);
    assert_int_equal(appended_records(f, "ia3"), i < 32 ? i + 1 : i - 32);
  }
}

/* An operation journaled since the index was written (its documents
 * changed, or might have, and a power cut can lose an append that a rename
 * kept): the index is not trusted; the next writer writes it again. */
static void test_index_journal_seq(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  write_three(f, "ia4");
  assert_true(trusted_now(f, "ia4"));
  assert_int_equal(store_open(f->ctx, "ia4", STORE_WRITE, &d, &err), 0);
  json_t *j = json_pack("{s:s}", "op", "test");
  assert_int_equal(store_journal_write(d, j, &err), 0);
  assert_int_equal(store_journal_clear(d, &err), 0);
  json_decref(j);
  store_close(d);
  assert_false(trusted_now(f, "ia4"));
  assert_false(session(f, "ia4", NULL, NULL));
  assert_true(trusted_now(f, "ia4"));
}

/* A damaged index (torn, flipped byte, garbage) is ignored. */
static void test_index_damaged(void **state)
{
  fixture *f = *state;
  store_domain *d;
  write_three(f, "ix4");
  char ipath[4200];
  size_t len;
  snap_path(f, "ix4", ".index", ipath, sizeof ipath);
  char *good = slurp(ipath, &len);
  for (int k = 0; k < 3; k++) {
    char *bad = malloc(len);
    memcpy(bad, good, len);
    size_t blen = len;
    if (k == 0) blen = len / 2;
    if (k == 1) bad[len - 20] ^= 0x20; /* a name changed, the checksum not */
    if (k == 2) memset(bad, 'x', len);
    spit(ipath, bad, blen);
    free(bad);
    json_t *arr = load(f, "ix4", STORE_READ, &d);
    assert_int_equal(json_array_size(arr), 3 + FILL);
    assert_string_equal(jstr(json_array_get(arr, 0), "name"), "a");
    assert_string_equal(jstr(json_array_get(arr, 1), "name"), "b");
    assert_string_equal(jstr(json_array_get(arr, 2), "name"), "c");
    assert_non_null(json_object_get(json_array_get(arr, 2), "disks")); /* read whole */
    json_decref(arr);
    store_close(d);
  }
  free(good);
}

/* A reader making a light document whole takes the file as it is now: a
 * writer may have changed it since the reader loaded. */
static void test_index_reader_sees_file(void **state)
{
  fixture *f = *state;
  store_domain *r, *w;
  vs_err err = {0};
  write_three(f, "ix6");
  json_t *arr = load(f, "ix6", STORE_READ, &r);
  json_t *warr = load(f, "ix6", STORE_WRITE, &w);
  json_t *wb = json_array_get(warr, 1);
  json_object_set_new(wb, "name", json_string("renamed"));
  assert_int_equal(store_write_snapshot(w, wb, &err), 0);
  json_decref(warr);
  store_close(w);
  json_t *b = json_array_get(arr, 1);
  assert_string_equal(jstr(b, "name"), "b"); /* as loaded */
  assert_int_equal(store_doc(r, b, &err), 0);
  assert_string_equal(jstr(b, "name"), "renamed");
  json_decref(arr);
  store_close(r);
}

/* A domain of a few snapshots keeps no index: reading them all is as cheap. */
static void test_index_small_domain(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  json_t *arr = load(f, "ix7", STORE_CREATE, &d);
  json_decref(arr);
  json_t *a = snap_doc("u-a", "a", NULL, 1);
  assert_int_equal(store_write_snapshot(d, a, &err), 0);
  json_decref(a);
  store_close(d);
  char path[4200];
  snap_path(f, "ix7", ".index", path, sizeof path);
  assert_int_not_equal(access(path, F_OK), 0);
  arr = load(f, "ix7", STORE_READ, &d);
  assert_int_equal(json_array_size(arr), 1);
  assert_non_null(json_object_get(json_array_get(arr, 0), "disks")); /* read whole */
  json_decref(arr);
  store_close(d);
}

/* ---- the current snapshot: snapshots/.current ---------------------------- */

static json_t *reopen_current(fixture *f, const char *dom)
{
  store_domain *d;
  vs_err err = {0};
  assert_int_equal(store_open(f->ctx, dom, STORE_READ, &d, &err), 0);
  json_t *cur = json_incref(json_object_get(d->doc, "current"));
  store_close(d);
  return cur;
}

static void link_target(fixture *f, const char *dom, char *out, size_t len)
{
  char path[4200];
  snap_path(f, dom, ".current", path, sizeof path);
  ssize_t n = readlink(path, out, len - 1);
  assert_true(n > 0);
  out[n] = '\0';
}

static ino_t inode_of(const char *path)
{
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return st.st_ino;
}

/* "current" lives in the link; domain.json is written only when the rest of
 * it changes (a create that moves only "current" writes nothing in the
 * domain directory). */
static void test_current_link(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  char path[4200], target[128];
  snprintf(path, sizeof path, "%s/state/domains/cur/domain.json", f->dir);
  assert_int_equal(store_open(f->ctx, "cur", STORE_CREATE, &d, &err), 0);
  json_object_set_new(d->doc, "current", json_string("u-1"));
  assert_int_equal(store_write_domain(d, &err), 0);
  store_close(d);
  link_target(f, "cur", target, sizeof target);
  assert_string_equal(target, "u-1");
  json_error_t je;
  json_t *on_disk = json_load_file(path, 0, &je);
  assert_non_null(on_disk);
  assert_null(json_object_get(on_disk, "current"));
  json_decref(on_disk);
  json_t *cur = reopen_current(f, "cur");
  assert_string_equal(json_string_value(cur), "u-1");
  json_decref(cur);

  /* Only "current" moves: domain.json stays the same file. */
  ino_t before = inode_of(path);
  assert_int_equal(store_open(f->ctx, "cur", STORE_WRITE, &d, &err), 0);
  json_object_set_new(d->doc, "current", json_string("u-2"));
  store_batch_begin(d);
  assert_int_equal(store_batch_end(d, store_write_domain(d, &err), &err), 0);
  store_close(d);
  assert_true(inode_of(path) == before);
  link_target(f, "cur", target, sizeof target);
  assert_string_equal(target, "u-2");

  /* The rest changes (its parts changed in place, too): domain.json is
   * written; no current is "-". */
  assert_int_equal(store_open(f->ctx, "cur", STORE_WRITE, &d, &err), 0);
  json_array_append_new(json_object_get(d->doc, "disks"), json_string("vda"));
  json_object_set_new(d->doc, "current", json_null());
  assert_int_equal(store_write_domain(d, &err), 0);
  json_array_append_new(json_object_get(d->doc, "disks"), json_string("vdb"));
  assert_int_equal(store_write_domain(d, &err), 0);
  store_close(d);
  on_disk = json_load_file(path, 0, &je);
  assert_int_equal(json_array_size(json_object_get(on_disk, "disks")), 2);
  json_decref(on_disk);
  link_target(f, "cur", target, sizeof target);
  assert_string_equal(target, "-");
  cur = reopen_current(f, "cur");
  assert_true(json_is_null(cur));
  json_decref(cur);

  /* Undoing the first create removes both. */
  assert_int_equal(store_open(f->ctx, "cur", STORE_WRITE, &d, &err), 0);
  assert_int_equal(store_forget_domain_doc(d, &err), 0);
  store_forget_fresh(d);
  store_close(d);
  snprintf(path, sizeof path, "%s/state/domains/cur", f->dir);
  assert_false(tu_exists(path));
}

/* A state dir from before the link: domain.json's "current" holds until
 * the link is written; a damaged link is an error naming it. */
static void test_current_legacy_and_damaged(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  char path[4200];
  assert_int_equal(store_open(f->ctx, "old", STORE_CREATE, &d, &err), 0);
  store_close(d);
  snprintf(path, sizeof path, "%s/state/domains/old/domain.json", f->dir);
  FILE *fp = fopen(path, "w");
  fputs("{\"format\": 1, \"name\": \"old\", \"disks\": [], \"current\": \"u-old\"}\n", fp);
  fclose(fp);
  json_t *cur = reopen_current(f, "old");
  assert_string_equal(json_string_value(cur), "u-old");
  json_decref(cur);

  snap_path(f, "old", ".current", path, sizeof path);
  assert_int_equal(symlink("../../x", path), 0);
  assert_int_equal(store_open(f->ctx, "old", STORE_READ, &d, &err), VMSNAP_E_IO);
  assert_non_null(strstr(err.msg, ".current is damaged"));
  assert_int_equal(unlink(path), 0);
  assert_int_equal(symlink("u-new", path), 0);
  cur = reopen_current(f, "old");
  assert_string_equal(json_string_value(cur), "u-new");
  json_decref(cur);
}

/* A batch: nothing in place before its end, everything after; an error
 * drops its temporary files. */
static void test_batch(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  char path[4200];
  assert_int_equal(store_open(f->ctx, "ix5", STORE_CREATE, &d, &err), 0);
  json_t *a = snap_doc("u-a", "a", NULL, 1);
  store_batch_begin(d);
  assert_int_equal(store_write_snapshot(d, a, &err), 0);
  assert_int_equal(store_write_domain(d, &err), 0);
  snap_path(f, "ix5", "u-a.json", path, sizeof path);
  assert_int_not_equal(access(path, F_OK), 0);
  assert_int_equal(store_batch_end(d, VMSNAP_E_IO, &err), VMSNAP_E_IO);
  snap_path(f, "ix5", ".u-a.json.tmp", path, sizeof path);
  assert_int_not_equal(access(path, F_OK), 0);
  store_batch_begin(d);
  json_object_set_new(a, "name", json_string("a1"));
  assert_int_equal(store_write_snapshot(d, a, &err), 0);
  json_object_set_new(a, "name", json_string("a2")); /* written twice: the last wins */
  assert_int_equal(store_write_snapshot(d, a, &err), 0);
  assert_int_equal(store_write_domain(d, &err), 0);
  assert_int_equal(store_batch_end(d, 0, &err), 0);
  assert_int_not_equal(access(path, F_OK), 0);
  snap_path(f, "ix5", "u-a.json", path, sizeof path);
  json_t *doc = json_load_file(path, 0, NULL);
  assert_string_equal(jstr(doc, "name"), "a2");
  json_decref(doc);
  snprintf(path, sizeof path, "%s/state/domains/ix5/domain.json", f->dir);
  assert_int_equal(access(path, F_OK), 0);
  json_decref(a);
  store_close(d);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_modes_and_roundtrip, setup, teardown),
    cmocka_unit_test_setup_teardown(test_leftover_temp_ignored, setup, teardown),
    cmocka_unit_test_setup_teardown(test_readers_never_see_half, setup, teardown),
    cmocka_unit_test_setup_teardown(test_lock_busy, setup, teardown),
    cmocka_unit_test_setup_teardown(test_journal_blocks_until_recover, setup, teardown),
    cmocka_unit_test_setup_teardown(test_damaged_document, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_light_documents, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_write_light_keeps_document, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_disagrees_with_documents, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_damaged, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_family, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_appended, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_torn_append, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_compaction, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_journal_seq, setup, teardown),
    cmocka_unit_test_setup_teardown(test_fresh_domain_forgotten, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_trusted_while_dir_unchanged, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_reader_sees_file, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_small_domain, setup, teardown),
    cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
    cmocka_unit_test_setup_teardown(test_current_link, setup, teardown),
    cmocka_unit_test_setup_teardown(test_current_legacy_and_damaged, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
