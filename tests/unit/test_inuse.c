/* test_inuse.c — the in-use check: one /proc scan for every disk, the
 * holder named, OFD locks seen, our own fds ignored, and the two-half
 * form (start, then finish or explain) giving the same verdicts. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "disks.h"
#include "testutil.h"

typedef struct holder {
  pid_t pid;
} holder;

/* A child that opens path (and OFD-locks it when asked), then waits to be
 * killed; returns once the child holds the file. */
static holder hold(const char *path, int lock)
{
  int ready[2];
  assert_int_equal(pipe(ready), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(ready[0]);
    int fd = open(path, O_RDWR);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fd < 0 || (lock && fcntl(fd, F_OFD_SETLK, &fl) < 0)) _exit(1);
    if (write(ready[1], "x", 1) != 1) _exit(1);
    for (;;) pause();
  }
  close(ready[1]);
  char c;
  assert_int_equal(read(ready[0], &c, 1), 1);
  close(ready[0]);
  return (holder){pid};
}

static void release(holder h)
{
  kill(h.pid, SIGKILL);
  waitpid(h.pid, NULL, 0);
}

static json_t *two_disks(const char *dir, char **a, char **b)
{
  *a = xasprintf("%s/a.raw", dir);
  *b = xasprintf("%s/b.raw", dir);
  tu_write_file(*a, 'a', 4096);
  tu_write_file(*b, 'b', 4096);
  return json_pack("[{s:s, s:s}, {s:s, s:s}]", "target", "vda", "source", *a, "target", "vdb",
                   "source", *b);
}

static void test_nothing_holds(void **state)
{
  (void)state;
  char *dir = tu_tempdir(), *a, *b;
  json_t *docs = two_disks(dir, &a, &b);
  /* our own fds are not a holder: the op itself may have a disk open */
  int mine = open(a, O_RDONLY);
  vs_err err = {0};
  assert_int_equal(disks_check_not_in_use(docs, &err), 0);
  inuse_check *c;
  assert_int_equal(disks_inuse_start(docs, &c, &err), 0);
  assert_int_equal(disks_inuse_finish(c, &err), 0);
  assert_int_equal(disks_inuse_finish(NULL, &err), 0);
  close(mine);
  json_decref(docs);
  tu_rmtree(dir);
  free(a); free(b); free(dir);
}

/* A regular file nobody else has open is answered by a write lease, in
 * O(1): no look at every fd of every process. A held one is scanned for. */
static void test_free_files_need_no_scan(void **state)
{
  (void)state;
  char *dir = tu_tempdir(), *a, *b;
  json_t *docs = two_disks(dir, &a, &b);
  unsigned before = atomic_load(&inuse_scans);
  vs_err err = {0};
  assert_int_equal(disks_check_not_in_use(docs, &err), 0);
  assert_int_equal(atomic_load(&inuse_scans), before);
  holder h = hold(a, 0);
  assert_int_equal(disks_check_not_in_use(docs, &err), VMSNAP_E_BUSY);
  assert_int_equal(atomic_load(&inuse_scans), before + 1);
  release(h);
  json_decref(docs);
  tu_rmtree(dir);
  free(a); free(b); free(dir);
}

static void test_second_disk_held(void **state)
{
  (void)state;
  char *dir = tu_tempdir(), *a, *b;
  json_t *docs = two_disks(dir, &a, &b);
  holder h = hold(b, 0);
  vs_err err = {0};
  assert_int_equal(disks_check_not_in_use(docs, &err), VMSNAP_E_BUSY);
  char pid[32];
  snprintf(pid, sizeof pid, "process %ld", (long)h.pid);
  assert_non_null(strstr(err.msg, "disk vdb"));
  assert_non_null(strstr(err.msg, pid));
  /* the two-half form says the same */
  vs_err err2 = {0};
  inuse_check *c;
  assert_int_equal(disks_inuse_start(docs, &c, &err2), 0);
  assert_int_equal(disks_inuse_finish(c, &err2), VMSNAP_E_BUSY);
  assert_string_equal(err.msg, err2.msg);
  release(h);
  err = (vs_err){0};
  assert_int_equal(disks_check_not_in_use(docs, &err), 0);
  json_decref(docs);
  tu_rmtree(dir);
  free(a); free(b); free(dir);
}

static void test_locked_holder(void **state)
{
  (void)state;
  char *dir = tu_tempdir(), *a, *b;
  json_t *docs = two_disks(dir, &a, &b);
  holder h = hold(a, 1);
  vs_err err = {0};
  assert_int_equal(disks_check_not_in_use(docs, &err), VMSNAP_E_BUSY);
  assert_non_null(strstr(err.msg, "disk vda"));
  assert_non_null(strstr(err.msg, "holds a lock on it"));
  release(h);
  json_decref(docs);
  tu_rmtree(dir);
  free(a); free(b); free(dir);
}

/* A backend's failure to prepare is explained by a disk in use, and kept
 * as it is when nothing holds the disks. */
static void test_explain(void **state)
{
  (void)state;
  char *dir = tu_tempdir(), *a, *b;
  json_t *docs = two_disks(dir, &a, &b);
  vs_err err = {0};
  inuse_check *c;
  assert_int_equal(disks_inuse_start(docs, &c, &err), 0);
  err_set(&err, VMSNAP_E_IO, "backend failed");
  assert_int_equal(disks_inuse_explain(c, VMSNAP_E_IO, &err), VMSNAP_E_IO);
  assert_string_equal(err.msg, "backend failed");

  holder h = hold(a, 0);
  err = (vs_err){0};
  assert_int_equal(disks_inuse_start(docs, &c, &err), 0);
  err_set(&err, VMSNAP_E_IO, "backend failed");
  assert_int_equal(disks_inuse_explain(c, VMSNAP_E_IO, &err), VMSNAP_E_BUSY);
  assert_non_null(strstr(err.msg, "in use by process"));
  assert_int_equal(disks_inuse_explain(NULL, VMSNAP_E_IO, &err), VMSNAP_E_IO);
  release(h);
  json_decref(docs);
  tu_rmtree(dir);
  free(a); free(b); free(dir);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_nothing_holds),
    cmocka_unit_test(test_free_files_need_no_scan),
    cmocka_unit_test(test_second_disk_held),
    cmocka_unit_test(test_locked_holder),
    cmocka_unit_test(test_explain),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
