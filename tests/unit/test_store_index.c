/* test_store_index.c — the index behind store_load_snapshots: light documents,
 * trusted only while it matches, appended to, compacted, torn records. */
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

#include "store_fixture.h"

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

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_index_light_documents, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_write_light_keeps_document, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_disagrees_with_documents, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_damaged, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_family, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_appended, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_torn_append, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_compaction, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_journal_seq, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_trusted_while_dir_unchanged, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_reader_sees_file, setup, teardown),
    cmocka_unit_test_setup_teardown(test_index_small_domain, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
