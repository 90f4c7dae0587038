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

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_modes_and_roundtrip, setup, teardown),
    cmocka_unit_test_setup_teardown(test_leftover_temp_ignored, setup, teardown),
    cmocka_unit_test_setup_teardown(test_readers_never_see_half, setup, teardown),
    cmocka_unit_test_setup_teardown(test_lock_busy, setup, teardown),
    cmocka_unit_test_setup_teardown(test_journal_blocks_until_recover, setup, teardown),
    cmocka_unit_test_setup_teardown(test_damaged_document, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
