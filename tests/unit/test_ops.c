/* test_ops.c — the op engine with the mock backend: closures run exactly
 * once, cancel leaves nothing, host dispatch, threads, multi-disk rollback,
 * capability refusals, QMP transaction merging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "qmp_txn.h"
#include "testutil.h"

typedef struct fixture {
  char *dir;
  vmsnap_ctx *ctx;
  char disk[3][4200];
} fixture;

static fixture *make_fixture(unsigned flags, const char *const names[3])
{
  fixture *f = calloc(1, sizeof *f);
  f->dir = tu_tempdir();
  f->ctx = tu_ctx(f->dir, flags);
  for (int i = 0; i < 3; i++) {
    snprintf(f->disk[i], sizeof f->disk[i], "%s/%s", f->dir, names[i]);
    tu_write_file(f->disk[i], 'A', 4096);
  }
  return f;
}

static void free_fixture(fixture *f)
{
  vmsnap_ctx_free(f->ctx);
  tu_rmtree(f->dir);
  free(f->dir);
  free(f);
}

static int create(fixture *f, const char *domain, const char *name, int ndisks,
                  const vmsnap_how *how, vmsnap_op **opp)
{
  vmsnap_disk_spec specs[3] = {{.target = "vda", .source = f->disk[0]},
                               {.target = "vdb", .source = f->disk[1]},
                               {.target = "vdc", .source = f->disk[2]}};
  vmsnap_create_params p = {.struct_size = sizeof p, .domain = domain, .name = name,
                            .disks = specs, .ndisks = (size_t)ndisks};
  return vmsnap_create(f->ctx, &p, how, opp);
}

static const char *const plain[3] = {"a.mock", "b.mock", "c.mock"};

/* ---- closures ---------------------------------------------------------- */

typedef struct counts {
  atomic_int done, done_free, progress, progress_free;
  atomic_int last_rc;
  pthread_t done_thread;
} counts;

static void on_done(void *u, vmsnap_op *op, int rc)
{
  counts *c = u;
  (void)op;
  atomic_fetch_add(&c->done, 1);
  atomic_store(&c->last_rc, rc);
  c->done_thread = pthread_self();
}
static void on_done_free(void *u) { atomic_fetch_add(&((counts *)u)->done_free, 1); }
static void on_progress(void *u, vmsnap_op *op, const vmsnap_progress *p)
{
  (void)op;
  assert_true(p->done <= p->total || p->total == 0);
  atomic_fetch_add(&((counts *)u)->progress, 1);
}
static void on_progress_free(void *u) { atomic_fetch_add(&((counts *)u)->progress_free, 1); }

static vmsnap_how how_for(counts *c, int async)
{
  vmsnap_how h = {.struct_size = sizeof h};
  if (async) { h.done.fn = on_done; h.done.user = c; h.done.free = on_done_free; }
  h.progress.fn = on_progress;
  h.progress.user = c;
  h.progress.free = on_progress_free;
  return h;
}

static void test_closures_exactly_once(void **state)
{
  (void)state;
  fixture *f = make_fixture(0, plain);
  /* async success */
  counts c = {0};
  vmsnap_how h = how_for(&c, 1);
  vmsnap_op *op;
  assert_int_equal(create(f, "vm", "s1", 1, &h, &op), 0);
  assert_int_equal(vmsnap_op_wait(op), 0);
  vmsnap_op_unref(op);
  vmsnap_ctx_free(f->ctx); /* waits for the worker: callbacks are done */
  f->ctx = tu_ctx(f->dir, 0);
  assert_int_equal(c.done, 1);
  assert_int_equal(c.done_free, 1);
  assert_int_equal(c.progress_free, 1);
  /* async failure (duplicate name) still completes exactly once */
  counts c2 = {0};
  h = how_for(&c2, 1);
  assert_int_equal(create(f, "vm", "s1", 1, &h, NULL), 0);
  vmsnap_ctx_free(f->ctx);
  f->ctx = tu_ctx(f->dir, 0);
  assert_int_equal(c2.done, 1);
  assert_int_equal(c2.last_rc, VMSNAP_E_EXISTS);
  assert_int_equal(c2.done_free, 1);
  assert_int_equal(c2.progress_free, 1);
  /* a call that cannot start: done never runs, free runs once */
  counts c3 = {0};
  h = how_for(&c3, 1);
  assert_int_equal(vmsnap_list(f->ctx, NULL, 0, &h, NULL), VMSNAP_E_INVALID);
  assert_int_equal(c3.done, 0);
  assert_int_equal(c3.done_free, 1);
  assert_int_equal(c3.progress_free, 1);
  /* synchronous with progress: progress free runs once too */
  counts c4 = {0};
  h = how_for(&c4, 0);
  assert_int_equal(create(f, "vm", "s2", 1, &h, NULL), 0);
  assert_int_equal(c4.progress_free, 1);
  free_fixture(f);
}

/* ---- cancel ------------------------------------------------------------ */

static void test_cancel_create_leaves_nothing(void **state)
{
  (void)state;
  static const char *const slow[3] = {"a.mock", "slow.mock", "c.mock"};
  fixture *f = make_fixture(0, slow);
  counts c = {0};
  vmsnap_how h = how_for(&c, 1);
  vmsnap_op *op;
  assert_int_equal(create(f, "vm", "s1", 3, &h, &op), 0);
  while (atomic_load(&c.progress) < 2) usleep(5000); /* it is running */
  vmsnap_op_cancel(op);
  vmsnap_op_cancel(op); /* idempotent */
  assert_int_equal(vmsnap_op_wait(op), VMSNAP_E_CANCELLED);
  vmsnap_op_unref(op);
  /* no marker of any disk, no metadata, no journal */
  char path[8400];
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s.vmsnap-s1", f->disk[i]);
    assert_false(tu_exists(path));
  }
  snprintf(path, sizeof path, "%s/state/domains/vm/journal", f->dir);
  assert_false(tu_exists(path));
  /* nor the domain: its first create was undone */
  snprintf(path, sizeof path, "%s/state/domains/vm", f->dir);
  assert_false(tu_exists(path));
  vmsnap_op *lop;
  assert_int_equal(vmsnap_list(f->ctx, "vm", 0, NULL, &lop), VMSNAP_E_NOT_FOUND);
  vmsnap_op_unref(lop);
  vmsnap_ctx_free(f->ctx);
  f->ctx = tu_ctx(f->dir, 0);
  assert_int_equal(c.done, 1);
  free_fixture(f);
}

/* ---- multi-disk failure ------------------------------------------------- */

static void test_one_disk_fails_others_undone(void **state)
{
  (void)state;
  static const char *const names[3] = {"a.mock", "b.mock", "fail-create.mock"};
  fixture *f = make_fixture(0, names);
  vmsnap_op *op;
  assert_int_equal(create(f, "vm", "s1", 3, NULL, &op), VMSNAP_E_BACKEND);
  assert_non_null(strstr(vmsnap_op_message(op), "disk vdc"));
  assert_non_null(strstr(vmsnap_op_message(op), "mock: create failed"));
  vmsnap_op_unref(op);
  char path[8400];
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s.vmsnap-s1", f->disk[i]);
    assert_false(tu_exists(path));
  }
  free_fixture(f);
}

static void test_prepare_failure_changes_nothing(void **state)
{
  (void)state;
  static const char *const names[3] = {"a.mock", "fail-prepare.mock", "c.mock"};
  fixture *f = make_fixture(0, names);
  vmsnap_op *op;
  assert_int_equal(create(f, "vm", "s1", 3, NULL, &op), VMSNAP_E_NOSPC);
  assert_non_null(strstr(vmsnap_op_message(op), "disk vdb"));
  vmsnap_op_unref(op);
  char path[8400];
  snprintf(path, sizeof path, "%s/state/domains/vm/journal", f->dir);
  assert_false(tu_exists(path));
  free_fixture(f);
}

/* ---- revert and its capability checks ------------------------------------ */

static void test_revert_and_keep_newer(void **state)
{
  (void)state;
  static const char *const names[3] = {"a.mock", "nokeep.mock", "c.mock"};
  fixture *f = make_fixture(0, names);
  assert_int_equal(create(f, "vm", "s1", 2, NULL, NULL), 0);
  tu_write_file(f->disk[0], 'B', 4096);
  tu_write_file(f->disk[1], 'B', 4096);
  assert_int_equal(create(f, "vm", "s2", 2, NULL, NULL), 0);
  /* s1 has a child and the nokeep disk cannot keep it: refused up front */
  vmsnap_op *op;
  assert_int_equal(vmsnap_revert(f->ctx, "vm", "s1", 0, NULL, &op), VMSNAP_E_UNSUPPORTED);
  assert_non_null(strstr(vmsnap_op_message(op), "--force"));
  vmsnap_op_unref(op);
  assert_int_equal(tu_first_byte(f->disk[0]), 'B'); /* nothing changed */
  assert_int_equal(vmsnap_revert(f->ctx, "vm", "s1", VMSNAP_REVERT_FORCE, NULL, &op), 0);
  assert_string_equal(vmsnap_snapshot_name(vmsnap_op_snapshot(op, 0)), "s1");
  vmsnap_op_unref(op);
  assert_int_equal(tu_first_byte(f->disk[0]), 'A');
  assert_int_equal(tu_first_byte(f->disk[1]), 'A');
  free_fixture(f);
}

static void test_revert_failure_aborts_all(void **state)
{
  (void)state;
  static const char *const names[3] = {"a.mock", "fail-revert.mock", "c.mock"};
  fixture *f = make_fixture(0, names);
  assert_int_equal(create(f, "vm", "s1", 2, NULL, NULL), 0);
  tu_write_file(f->disk[0], 'B', 4096);
  vmsnap_op *op;
  assert_int_equal(vmsnap_revert(f->ctx, "vm", "s1", 0, NULL, &op), VMSNAP_E_BACKEND);
  vmsnap_op_unref(op);
  char stage[8400];
  snprintf(stage, sizeof stage, "%s.stage", f->disk[0]);
  assert_false(tu_exists(stage)); /* the other disk's staging was undone */
  assert_int_equal(tu_first_byte(f->disk[0]), 'B');
  free_fixture(f);
}

/* ---- host dispatch --------------------------------------------------------- */

static void test_host_dispatch(void **state)
{
  (void)state;
  fixture *f = make_fixture(VMSNAP_CTX_HOST_DISPATCH, plain);
  counts c = {0};
  vmsnap_how h = how_for(&c, 1);
  vmsnap_op *op;
  assert_int_equal(create(f, "vm", "s1", 3, &h, &op), 0);
  struct pollfd pfd = {.fd = vmsnap_ctx_get_fd(f->ctx), .events = POLLIN};
  for (int i = 0; i < 500 && !atomic_load(&c.done); i++) {
    if (poll(&pfd, 1, 20) > 0) vmsnap_ctx_dispatch(f->ctx);
  }
  assert_int_equal(c.done, 1);
  assert_int_equal(c.last_rc, 0);
  assert_true(pthread_equal(c.done_thread, pthread_self())); /* on the host's thread */
  assert_int_equal(vmsnap_op_status(op), 0);
  vmsnap_op_unref(op);
  /* sync calls work in dispatch mode too */
  assert_int_equal(create(f, "vm", "s2", 3, NULL, NULL), 0);
  free_fixture(f);
}

/* ---- threads and contexts -------------------------------------------------- */

typedef struct worker {
  fixture *f;
  int id;
  int failures;
} worker;

static void *worker_main(void *arg)
{
  worker *w = arg;
  char domain[32], name[32];
  snprintf(domain, sizeof domain, "vm%d", w->id % 4);
  for (int i = 0; i < 5; i++) {
    snprintf(name, sizeof name, "t%d-%d", w->id, i);
    vmsnap_disk_spec spec = {.target = "vda", .source = w->f->disk[w->id % 3]};
    vmsnap_create_params p = {.struct_size = sizeof p, .domain = domain, .name = name,
                              .disks = &spec, .ndisks = 1};
    vmsnap_op *op;
    int rc = vmsnap_create(w->f->ctx, &p, NULL, &op);
    /* same-domain writers serialise on the lock; same disk used by several
     * domains is fine for the mock */
    if (rc) { w->failures++; fprintf(stderr, "%s\n", vmsnap_op_message(op)); }
    vmsnap_op_unref(op);
    if (vmsnap_list(w->f->ctx, domain, 0, NULL, NULL)) w->failures++;
  }
  return NULL;
}

static void test_threads_and_contexts(void **state)
{
  (void)state;
  fixture *f = make_fixture(0, plain);
  fixture *g = make_fixture(0, plain); /* a second context in the process */
  worker w[8];
  pthread_t t[8];
  for (int i = 0; i < 8; i++) {
    w[i] = (worker){.f = i % 2 ? g : f, .id = i};
    pthread_create(&t[i], NULL, worker_main, &w[i]);
  }
  for (int i = 0; i < 8; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(w[i].failures, 0);
  }
  vmsnap_op *op;
  assert_int_equal(vmsnap_list(f->ctx, "vm0", 0, NULL, &op), 0);
  assert_int_equal(vmsnap_op_snapshot_count(op), 10); /* workers 0 and 4, 5 each */
  vmsnap_op_unref(op);
  free_fixture(f);
  free_fixture(g);
}

/* ---- delete ------------------------------------------------------------- */

static void test_delete_reparents(void **state)
{
  (void)state;
  fixture *f = make_fixture(0, plain);
  assert_int_equal(create(f, "vm", "s1", 1, NULL, NULL), 0);
  assert_int_equal(create(f, "vm", "s2", 1, NULL, NULL), 0);
  assert_int_equal(create(f, "vm", "s3", 1, NULL, NULL), 0);
  assert_int_equal(vmsnap_delete(f->ctx, "vm", "s2", 0, NULL, NULL), 0);
  vmsnap_op *op;
  assert_int_equal(vmsnap_get(f->ctx, "vm", "s3", NULL, &op), 0);
  assert_string_equal(vmsnap_snapshot_parent(vmsnap_op_snapshot(op, 0)), "s1");
  assert_true(vmsnap_snapshot_is_current(vmsnap_op_snapshot(op, 0)));
  vmsnap_op_unref(op);
  assert_int_equal(vmsnap_delete(f->ctx, "vm", "s1", VMSNAP_DELETE_CHILDREN, NULL, NULL), 0);
  assert_int_equal(vmsnap_list(f->ctx, "vm", 0, NULL, &op), 0);
  assert_int_equal(vmsnap_op_snapshot_count(op), 0);
  vmsnap_op_unref(op);
  assert_int_equal(vmsnap_get(f->ctx, "vm", "s1", NULL, &op), VMSNAP_E_NOT_FOUND);
  assert_non_null(strstr(vmsnap_op_message(op), "no snapshot named 's1'"));
  vmsnap_op_unref(op);
  free_fixture(f);
}

/* ---- QMP transaction -------------------------------------------------------- */

static void test_qmp_transaction_merges_disks(void **state)
{
  (void)state;
  static const char *const names[3] = {"live1.mock", "live2.mock", "c.mock"};
  fixture *f = make_fixture(0, names);
  vmsnap_op *op = op_new(f->ctx, OP_CREATE);
  op->domain = strdup("vm");
  json_t *doc = json_pack("{s:s, s:s, s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}, {s:s, s:s, s:s}]}",
                          "name", "s1", "uuid", "u1", "disks", "target", "vda", "source",
                          f->disk[0], "backend", "mock", "target", "vdb", "source", f->disk[1],
                          "backend", "mock", "target", "vdc", "source", f->disk[2], "backend",
                          "mock");
  vmsnap_job **jobs;
  size_t n;
  vs_err err = {0};
  assert_int_equal(jobs_for_snapshot(op, doc, NULL, VMSNAP_JOB_CREATE, 0, &jobs, &n, &err), 0);
  for (size_t i = 0; i < 2; i++) /* the two live disks add their actions */
    assert_int_equal(jobs[i]->pl->ops.create(jobs[i], &jobs[i]->info), 0);
  json_t *txn = qmp_txn_build(jobs, n);
  assert_non_null(txn);
  assert_string_equal(jstr(txn, "execute"), "transaction");
  json_t *actions = json_object_get(json_object_get(txn, "arguments"), "actions");
  assert_int_equal(json_array_size(actions), 4); /* ONE transaction, every disk's actions */
  assert_string_equal(jstr(json_array_get(actions, 0), "type"), "blockdev-snapshot-internal-sync");
  json_t *reply = json_object();
  assert_int_equal(qmp_txn_deliver(jobs, n, 0, reply, &err), 0);
  assert_string_equal(jstr(jobs[0]->data, "live_result"), "{}");
  assert_string_equal(jstr(jobs[1]->data, "live_result"), "{}");
  assert_null(jstr(jobs[2]->data, "live_result")); /* no actions: not called */
  json_decref(reply);
  json_decref(txn);
  jobs_free(jobs, n);
  json_decref(doc);
  vmsnap_op_unref(op);
  free_fixture(f);
}

/* ---- per-disk backend options, and callers built before them ----------- */

static void test_disk_options(void **state)
{
  (void)state;
  fixture *f = make_fixture(0, plain);
  vmsnap_op *op;
  /* A caller built before vmsnap_disk_spec.options: shorter specs, and a
   * params struct that ends before disk_spec_size. */
  struct old_spec { const char *target, *source, *format, *backend, *mode, *file; };
  struct old_spec old[2] = {{"vda", f->disk[0], NULL, NULL, NULL, NULL},
                            {"vdb", f->disk[1], NULL, NULL, NULL, NULL}};
  vmsnap_create_params p = {.struct_size = offsetof(vmsnap_create_params, disk_spec_size),
                            .domain = "old", .name = "s1",
                            .disks = (const vmsnap_disk_spec *)(void *)old, .ndisks = 2};
  assert_int_equal(vmsnap_create(f->ctx, &p, NULL, &op), 0);
  assert_int_equal(vmsnap_snapshot_disk_count(vmsnap_op_snapshot(op, 0)), 2);
  assert_string_equal(vmsnap_snapshot_disk_source(vmsnap_op_snapshot(op, 0), 1), f->disk[1]);
  vmsnap_op_unref(op);

  /* An option the backend takes reaches it (and is remembered). */
  vmsnap_disk_spec spec = {.target = "vda", .source = f->disk[0], .options = "color=red,,blue"};
  vmsnap_create_params q = {.struct_size = sizeof q, .domain = "new", .name = "s1",
                            .disks = &spec, .ndisks = 1, .disk_spec_size = sizeof spec};
  assert_int_equal(vmsnap_create(f->ctx, &q, NULL, &op), 0);
  assert_non_null(strstr(vmsnap_snapshot_disk_data(vmsnap_op_snapshot(op, 0), 0),
                         "red,blue"));
  vmsnap_op_unref(op);
  vmsnap_create_params again = {.struct_size = sizeof again, .domain = "new", .name = "s2"};
  assert_int_equal(vmsnap_create(f->ctx, &again, NULL, &op), 0);
  assert_non_null(strstr(vmsnap_snapshot_disk_data(vmsnap_op_snapshot(op, 0), 0), "red,blue"));
  vmsnap_op_unref(op);

  /* One it does not take is refused, naming the ones it does. */
  spec.options = "shade=dark";
  q.domain = "bad";
  assert_int_equal(vmsnap_create(f->ctx, &q, NULL, &op), VMSNAP_E_INVALID);
  assert_non_null(strstr(vmsnap_op_message(op), "takes no option 'shade' (it takes: color=)"));
  vmsnap_op_unref(op);
  free_fixture(f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_closures_exactly_once),
    cmocka_unit_test(test_cancel_create_leaves_nothing),
    cmocka_unit_test(test_one_disk_fails_others_undone),
    cmocka_unit_test(test_prepare_failure_changes_nothing),
    cmocka_unit_test(test_revert_and_keep_newer),
    cmocka_unit_test(test_revert_failure_aborts_all),
    cmocka_unit_test(test_host_dispatch),
    cmocka_unit_test(test_threads_and_contexts),
    cmocka_unit_test(test_delete_reparents),
    cmocka_unit_test(test_qmp_transaction_merges_disks),
    cmocka_unit_test(test_disk_options),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
