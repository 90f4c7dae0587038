/* test_store.c — metadata documents: atomic, durable, private, locked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dlfcn.h>
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
  snap_path(f, "ix5", ".u-a.json.tmp", path, sizeof path);
  assert_int_not_equal(access(path, F_OK), 0); /* new: unnamed until installed */
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
  /* A document that exists is replaced through a named temporary (a
   * rename over it); a new one was written unnamed, above: no temporary. */
  store_batch_begin(d);
  json_object_set_new(a, "name", json_string("a3"));
  assert_int_equal(store_write_snapshot(d, a, &err), 0);
  snap_path(f, "ix5", ".u-a.json.tmp", path, sizeof path);
  assert_int_equal(access(path, F_OK), 0);
  assert_int_equal(store_batch_end(d, 0, &err), 0);
  assert_int_not_equal(access(path, F_OK), 0);
  json_decref(a);
  store_close(d);
}

/* A commit record: the batch installs it last, so a crash just before it
 * leaves every other write in place and not it. A new document is written
 * unnamed, so nothing of it is left; a named temporary (where there can be
 * no unnamed file) store_remove_temps (recover) takes away. */
static void test_batch_commit_record(void **state)
{
  fixture *f = *state;
  char path[4200];
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    store_domain *d;
    vs_err err = {0};
    if (store_open(f->ctx, "cr1", STORE_CREATE, &d, &err)) _exit(2);
    json_t *a = snap_doc("u-a", "a", NULL, 1), *b = snap_doc("u-b", "b", "u-a", 2);
    json_object_set_new(d->doc, "current", json_string("u-b"));
    setenv("VMSNAP_CRASHPOINT", "test:before-record", 1);
    store_batch_begin(d);
    if (store_write_snapshot(d, a, &err) || store_write_domain(d, &err)) _exit(3);
    store_batch_commit_record(d, "test:before-record");
    if (store_write_snapshot(d, b, &err)) _exit(4);
    store_batch_end(d, 0, &err);
    _exit(5); /* the crash point did not fire */
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  snap_path(f, "cr1", "u-a.json", path, sizeof path);
  assert_int_equal(access(path, F_OK), 0);
  snprintf(path, sizeof path, "%s/state/domains/cr1/domain.json", f->dir);
  assert_int_equal(access(path, F_OK), 0);
  char target[64] = "";
  snap_path(f, "cr1", ".current", path, sizeof path);
  assert_true(readlink(path, target, sizeof target - 1) > 0);
  assert_string_equal(target, "u-b");
  snap_path(f, "cr1", "u-b.json", path, sizeof path);
  assert_int_not_equal(access(path, F_OK), 0);
  snap_path(f, "cr1", ".u-b.json.tmp", path, sizeof path);
  assert_int_not_equal(access(path, F_OK), 0);
  int fd = open(path, O_WRONLY | O_CREAT, 0600); /* as a named temporary would be */
  assert_true(fd >= 0);
  close(fd);

  store_domain *d;
  vs_err err = {0};
  assert_int_equal(store_open(f->ctx, "cr1", STORE_WRITE, &d, &err), 0);
  store_remove_temps(d);
  assert_int_not_equal(access(path, F_OK), 0);
  snap_path(f, "cr1", "u-a.json", path, sizeof path);
  assert_int_equal(access(path, F_OK), 0); /* documents stay */
  store_close(d);
}

/* The store's flushes and the names it makes, in order, while tracing:
 * "F <inode>" for an fsync, "N <inode>" when a name appears for an inode
 * (linkat, renameat). These wrap libc's for the code linked in here. */
static int tracing, ntrace;
static struct { char what; ino_t ino; } trace[256];

static void trace_add(char what, ino_t ino)
{
  if (tracing && ntrace < 256) {
    trace[ntrace].what = what;
    trace[ntrace++].ino = ino;
  }
}

int fsync(int fd)
{
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  struct stat sb;
  if (fstat(fd, &sb) == 0) trace_add('F', sb.st_ino);
  return real(fd);
}

static void trace_name(int dirfd, const char *name)
{
  struct stat sb;
  if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0) trace_add('N', sb.st_ino);
}

int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)
{
  static int (*real)(int, const char *, int, const char *, int);
  if (!real) real = (int (*)(int, const char *, int, const char *, int))dlsym(RTLD_NEXT, "linkat");
  int rc = real(olddirfd, oldpath, newdirfd, newpath, flags);
  if (rc == 0) trace_name(newdirfd, newpath);
  return rc;
}

int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
  static int (*real)(int, const char *, int, const char *);
  if (!real) real = (int (*)(int, const char *, int, const char *))dlsym(RTLD_NEXT, "renameat");
  int rc = real(olddirfd, oldpath, newdirfd, newpath);
  if (rc == 0) trace_name(newdirfd, newpath);
  return rc;
}

static int trace_find(char what, ino_t ino, int from)
{
  for (int i = from; i < ntrace; i++)
    if (trace[i].what == what && trace[i].ino == ino) return i;
  return -1;
}

/* A power cut must never leave a commit record's name on disk without its
 * content: recover keeps a create whose document exists. So a new
 * document is flushed before its name appears, and its directory after. */
static void test_record_flushed_before_named(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  char path[4200];
  struct stat doc, dir;
  assert_int_equal(store_open(f->ctx, "fo1", STORE_CREATE, &d, &err), 0);
  json_t *a = snap_doc("u-a", "a", NULL, 1);
  json_object_set_new(d->doc, "current", json_string("u-a"));
  ntrace = 0;
  tracing = 1;
  store_batch_begin(d);
  assert_int_equal(store_write_domain(d, &err), 0);
  store_batch_commit_record(d, "test:never");
  assert_int_equal(store_write_snapshot(d, a, &err), 0);
  assert_int_equal(store_batch_end(d, 0, &err), 0);
  tracing = 0;
  snap_path(f, "fo1", "u-a.json", path, sizeof path);
  assert_int_equal(stat(path, &doc), 0);
  snap_path(f, "fo1", ".", path, sizeof path);
  assert_int_equal(stat(path, &dir), 0);
  int named = trace_find('N', doc.st_ino, 0);
  assert_true(named >= 0);
  int flushed = trace_find('F', doc.st_ino, 0);
  assert_true(flushed >= 0 && flushed < named);
  assert_true(trace_find('F', dir.st_ino, named) > named);
  json_decref(a);
  store_close(d);
}

/* A clear that is not waited for is a clear all the same, and the next
 * intent is recorded after it. */
static void test_journal_clear_done(void **state)
{
  fixture *f = *state;
  store_domain *d;
  vs_err err = {0};
  assert_int_equal(store_open(f->ctx, "jc1", STORE_CREATE, &d, &err), 0);
  json_t *j = json_pack("{s:s, s:{s:s}}", "op", "delete", "snapshot", "name", "s1");
  assert_int_equal(store_journal_write(d, j, &err), 0);
  assert_int_equal(store_journal_clear_done(d, &err), 0);
  assert_int_equal(store_check_no_journal(d, &err), 0);
  assert_int_equal(store_journal_write(d, j, &err), 0);
  store_close(d);
  assert_int_equal(store_open(f->ctx, "jc1", STORE_WRITE, &d, &err), 0);
  assert_int_equal(store_check_no_journal(d, &err), VMSNAP_E_NEEDS_RECOVER);
  assert_int_equal(store_journal_clear_done(d, &(vs_err){0}), 0);
  store_close(d);
  memset(&err, 0, sizeof err);
  assert_int_equal(store_open(f->ctx, "jc1", STORE_WRITE, &d, &err), 0);
  assert_int_equal(store_check_no_journal(d, &err), 0);
  json_decref(j);
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
    cmocka_unit_test_setup_teardown(test_fresh_domain_forgotten, setup, teardown),
    cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
    cmocka_unit_test_setup_teardown(test_batch_commit_record, setup, teardown),
    cmocka_unit_test_setup_teardown(test_record_flushed_before_named, setup, teardown),
    cmocka_unit_test_setup_teardown(test_journal_clear_done, setup, teardown),
    cmocka_unit_test_setup_teardown(test_current_link, setup, teardown),
    cmocka_unit_test_setup_teardown(test_current_legacy_and_damaged, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
