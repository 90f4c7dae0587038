/* test_journal.c — the two-slot journal: a torn write leaves the record
 * before it in force, records that outgrow a slot, damage, old files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "testutil.h"

typedef struct fixture {
  char *dir;
  vmsnap_ctx *ctx;
  store_domain *d;
  char path[4200]; /* the journal file */
} fixture;

static int setup(void **state)
{
  fixture *f = calloc(1, sizeof *f);
  f->dir = tu_tempdir();
  f->ctx = tu_ctx(f->dir, 0);
  assert_int_equal(store_open(f->ctx, "vm", STORE_CREATE, &f->d, &(vs_err){0}), 0);
  snprintf(f->path, sizeof f->path, "%s/journal", f->d->dir);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fixture *f = *state;
  store_close(f->d);
  vmsnap_ctx_free(f->ctx);
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static json_t *intent(const char *name)
{
  return json_pack("{s:s, s:{s:s}}", "op", "create", "snapshot", "name", name);
}

static void write_intent(fixture *f, const char *name)
{
  json_t *j = intent(name);
  assert_int_equal(store_journal_write(f->d, j, &(vs_err){0}), 0);
  json_decref(j);
}

/* What a fresh open (another process, after a crash) reads. */
static const char *pending_name(fixture *f, char *buf, size_t len)
{
  store_domain *d;
  json_t *j = NULL;
  assert_int_equal(store_open(f->ctx, "vm", STORE_READ, &d, &(vs_err){0}), 0);
  int rc = store_journal_read(d, &j, &(vs_err){0});
  store_close(d);
  if (rc == VMSNAP_E_NOT_FOUND) return NULL;
  assert_int_equal(rc, 0);
  snprintf(buf, len, "%s", json_string_value(json_object_get(json_object_get(j, "snapshot"),
                                                             "name")));
  json_decref(j);
  return buf;
}

/* A new op after a crash: a fresh handle, which reads the file again. */
static void reopen(fixture *f)
{
  store_close(f->d);
  assert_int_equal(store_open(f->ctx, "vm", STORE_WRITE, &f->d, &(vs_err){0}), 0);
}

static off_t file_size(const char *path)
{
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return st.st_size;
}

/* Overwrites len bytes at off: a write the crash tore. */
static void scribble(const char *path, off_t off, size_t len)
{
  char junk[256];
  memset(junk, 'x', sizeof junk);
  int fd = open(path, O_WRONLY);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, junk, len, off), (ssize_t)len);
  close(fd);
}

/* The slot the record in force is in: the other is the next one written. */
static off_t current_slot(fixture *f)
{
  return (off_t)(f->d->journal_cur * f->d->journal_slot_size);
}

static void test_write_clear_alternate_in_place(void **state)
{
  fixture *f = *state;
  char buf[64];
  assert_false(tu_exists(f->path)); /* made by the first write */
  assert_null(pending_name(f, buf, sizeof buf));
  write_intent(f, "a");
  off_t size = file_size(f->path);
  struct stat before, after;
  assert_int_equal(stat(f->path, &before), 0);
  for (int i = 0; i < 10; i++) {
    assert_string_equal(pending_name(f, buf, sizeof buf), "a");
    assert_int_equal(store_journal_clear(f->d, &(vs_err){0}), 0);
    assert_null(pending_name(f, buf, sizeof buf));
    assert_int_equal(store_check_no_journal(f->d, &(vs_err){0}), 0);
    write_intent(f, "a");
  }
  /* The same file all along, never grown: written in place. */
  assert_int_equal(stat(f->path, &after), 0);
  assert_int_equal(after.st_ino, before.st_ino);
  assert_int_equal(file_size(f->path), size);
  assert_int_equal(after.st_mode & 07777, 0600);
}

static void test_torn_intent_reads_as_none(void **state)
{
  fixture *f = *state;
  char buf[64];
  write_intent(f, "a");
  assert_int_equal(store_journal_clear(f->d, &(vs_err){0}), 0);
  write_intent(f, "b");
  /* The intent's body half written: the clear before it is in force. */
  scribble(f->path, current_slot(f) + 80, 10);
  assert_null(pending_name(f, buf, sizeof buf));
  /* Its header torn instead: the same. */
  reopen(f);
  write_intent(f, "c");
  scribble(f->path, current_slot(f) + 20, 30);
  assert_null(pending_name(f, buf, sizeof buf));
}

static void test_torn_clear_keeps_the_intent(void **state)
{
  fixture *f = *state;
  char buf[64];
  write_intent(f, "a");
  assert_int_equal(store_journal_clear(f->d, &(vs_err){0}), 0);
  write_intent(f, "b");
  assert_int_equal(store_journal_clear(f->d, &(vs_err){0}), 0);
  scribble(f->path, current_slot(f), 40);
  assert_string_equal(pending_name(f, buf, sizeof buf), "b");
  vs_err err = {0};
  reopen(f);
  assert_int_equal(store_check_no_journal(f->d, &err), VMSNAP_E_NEEDS_RECOVER);
  assert_non_null(strstr(err.msg, "snapshot 'b'"));
  /* Recover clears it: the torn slot is the one written next. */
  assert_int_equal(store_journal_clear(f->d, &(vs_err){0}), 0);
  assert_null(pending_name(f, buf, sizeof buf));
}

static void test_big_record_grows_the_file(void **state)
{
  fixture *f = *state;
  char buf[64];
  write_intent(f, "small");
  off_t small = file_size(f->path);
  char *big = malloc(200000);
  memset(big, 'n', 199999);
  big[199999] = '\0';
  write_intent(f, big);
  assert_true(file_size(f->path) > small);
  char *got = malloc(200001);
  assert_string_equal(pending_name(f, got, 200001), big);
  assert_int_equal(store_journal_clear(f->d, &(vs_err){0}), 0);
  assert_null(pending_name(f, buf, sizeof buf));
  write_intent(f, "after");
  assert_string_equal(pending_name(f, buf, sizeof buf), "after");
  free(got);
  free(big);
}

static void test_damaged_file_is_refused(void **state)
{
  fixture *f = *state;
  write_intent(f, "a");
  assert_int_equal(store_journal_clear(f->d, &(vs_err){0}), 0);
  scribble(f->path, 0, 64);
  scribble(f->path, (off_t)f->d->journal_slot_size, 64);
  reopen(f);
  vs_err err = {0};
  /* An intent may have been lost with it: ask the user, never guess. */
  assert_int_equal(store_check_no_journal(f->d, &err), VMSNAP_E_IO);
  assert_non_null(strstr(err.msg, "journal is damaged"));
  assert_true(store_journal_pending(f->d));
}

static void test_legacy_journal_json_honoured(void **state)
{
  fixture *f = *state;
  char legacy[4300];
  snprintf(legacy, sizeof legacy, "%s/journal.json", f->d->dir);
  FILE *fp = fopen(legacy, "w");
  fputs("{\"op\": \"delete\", \"snapshot\": {\"name\": \"old\"}}\n", fp);
  fclose(fp);
  vs_err err = {0};
  assert_int_equal(store_check_no_journal(f->d, &err), VMSNAP_E_NEEDS_RECOVER);
  assert_non_null(strstr(err.msg, "interrupted delete of snapshot 'old'"));
  assert_int_equal(store_journal_clear(f->d, &(vs_err){0}), 0);
  assert_false(tu_exists(legacy));
  assert_int_equal(store_check_no_journal(f->d, &(vs_err){0}), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_write_clear_alternate_in_place, setup, teardown),
    cmocka_unit_test_setup_teardown(test_torn_intent_reads_as_none, setup, teardown),
    cmocka_unit_test_setup_teardown(test_torn_clear_keeps_the_intent, setup, teardown),
    cmocka_unit_test_setup_teardown(test_big_record_grows_the_file, setup, teardown),
    cmocka_unit_test_setup_teardown(test_damaged_file_is_refused, setup, teardown),
    cmocka_unit_test_setup_teardown(test_legacy_journal_json_honoured, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
