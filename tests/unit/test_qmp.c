/* test_qmp.c — the QMP client against a real QEMU started by each test
 * (firmware only, no guest OS: the firmware just spins), plus a fake
 * monitor for what QEMU will not do on demand (split and batched writes,
 * huge replies, an HMP socket). A missing qemu-system-x86_64 is a FAILURE:
 * CI must never pass without having talked to QEMU. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qemu_vm.h"
#include "qmp.h"

#define MiB (1024 * 1024)

static qmp_conn *must_open(vm *v)
{
  qmp_conn *c = NULL;
  vs_err err = {0};
  int rc = qmp_open(v->sock, 3000, &c, &err);
  if (rc) fail_msg("qmp_open: %d %s", rc, err.msg);
  return c;
}

static void exec_ok(qmp_conn *c, const char *cmd, json_t *args, json_t **ret)
{
  vs_err err = {0};
  int rc = qmp_execute(c, cmd, args, 0, ret, &err);
  if (rc) fail_msg("%s: %d %s", cmd, rc, err.msg);
}

static void assert_status(qmp_conn *c, const char *want)
{
  char *st = NULL;
  vs_err err = {0};
  assert_int_equal(qmp_query_status(c, &st, &err), 0);
  assert_string_equal(st, want);
  free(st);
}

/* ---- connection ------------------------------------------------------------ */

static void test_greeting_capabilities_version(void **state)
{
  vm *v = *state;
  const char *const argv[] = {"qemu-system-x86_64", "--version", NULL};
  char *out = run_tool(argv);
  int maj = -1, min = -1, mic = -1, M = 0, m = 0, u = 0;
  assert_non_null(out);
  assert_int_equal(sscanf(out, "QEMU emulator version %d.%d.%d", &M, &m, &u), 3);
  free(out);
  qmp_conn *c = must_open(v);
  qmp_version(c, &maj, &min, &mic);
  assert_int_equal(maj, M);
  assert_int_equal(min, m);
  assert_int_equal(mic, u);
  /* Capabilities were negotiated: commands work (before it, only
   * qmp_capabilities is accepted). */
  assert_status(c, "running");
  qmp_close(c);
}

static void test_missing_socket(void **state)
{
  qmp_conn *c = NULL;
  vs_err err = {0};
  assert_int_equal(qmp_open("/nonexistent/vmsnap-qmp.sock", 500, &c, &err), VMSNAP_E_NOT_FOUND);
  assert_null(c);
  assert_non_null(strstr(err.msg, "/nonexistent/vmsnap-qmp.sock"));
}

/* A socket file nobody listens on: what a killed QEMU leaves behind. */
static void test_refused(void **state)
{
  char *dir = tu_tempdir(), path[300];
  snprintf(path, sizeof path, "%s/stale.sock", dir);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = unix_addr(path);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  qmp_conn *c = NULL;
  vs_err err = {0};
  assert_int_equal(qmp_open(path, 500, &c, &err), VMSNAP_E_BUSY);
  assert_non_null(strstr(err.msg, "refused"));
  close(fd);
  tu_rmtree(dir);
  free(dir);
}

/* QEMU serves one client: the second connect succeeds into the backlog but
 * no greeting comes. It must end as BUSY in time, and work once freed. */
static void test_second_client_busy(void **state)
{
  vm *v = *state;
  qmp_conn *c1 = must_open(v), *c2 = NULL;
  vs_err err = {0};
  double t0 = secs();
  assert_int_equal(qmp_open(v->sock, 400, &c2, &err), VMSNAP_E_BUSY);
  double took = secs() - t0;
  assert_true(took >= 0.35 && took < 2.0);
  assert_non_null(strstr(err.msg, "no QMP greeting within 400 ms"));
  assert_non_null(strstr(err.msg, "another client"));
  /* QEMU listens with a backlog of 1: a client or two more (the one just
   * closed still counts until QEMU accepts it) fill the kernel's accept
   * queue, and connect() says EAGAIN. Still BUSY in time. */
  int raw[4], nraw = 0;
  struct sockaddr_un sa = unix_addr(v->sock);
  while (nraw < 4) {
    raw[nraw] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int full = connect(raw[nraw], (struct sockaddr *)&sa, sizeof sa) != 0;
    nraw++;
    if (full) break;
  }
  assert_true(nraw < 4);
  memset(&err, 0, sizeof err);
  t0 = secs();
  assert_int_equal(qmp_open(v->sock, 400, &c2, &err), VMSNAP_E_BUSY);
  took = secs() - t0;
  assert_true(took >= 0.35 && took < 2.0);
  assert_non_null(strstr(err.msg, "queue is full"));
  assert_non_null(strstr(err.msg, "another client"));
  for (int i = 0; i < nraw; i++) close(raw[i]);
  qmp_close(c1);
  c2 = must_open(v);
  assert_status(c2, "running");
  qmp_close(c2);
}

/* ---- commands and events -------------------------------------------------- */

static void test_status_and_events(void **state)
{
  vm *v = *state;
  qmp_conn *c = must_open(v);
  json_t *ev = NULL;
  vs_err err = {0};
  assert_status(c, "running");
  exec_ok(c, "stop", NULL, NULL);
  assert_status(c, "paused");
  exec_ok(c, "cont", NULL, NULL);
  assert_status(c, "running");
  /* STOP came before stop's reply; RESUME may come after cont's: both are
   * there, in order, without any new wait. */
  assert_int_equal(qmp_next_event(c, "RESUME", 2000, &ev, &err), 0);
  assert_non_null(ev);
  assert_string_equal(jstr(ev, "event"), "RESUME");
  assert_non_null(json_object_get(ev, "timestamp"));
  json_decref(ev);
  assert_int_equal(qmp_next_event(c, NULL, 0, &ev, &err), 0);
  assert_non_null(ev);
  assert_string_equal(jstr(ev, "event"), "STOP");
  json_decref(ev);
  /* Nothing more: NULL after the timeout, not an error. */
  double t0 = secs();
  assert_int_equal(qmp_next_event(c, "STOP", 150, &ev, &err), 0);
  assert_null(ev);
  assert_true(secs() - t0 >= 0.14 && secs() - t0 < 1.0);
  qmp_close(c);
}

static void test_query_block(void **state)
{
  vm *v = *state;
  qmp_conn *c = must_open(v);
  json_t *devs = NULL, *d;
  vs_err err = {0};
  size_t i;
  int found = 0;
  assert_int_equal(qmp_query_block(c, &devs, &err), 0);
  json_array_foreach(devs, i, d) {
    json_t *ins = json_object_get(d, "inserted");
    const char *node = jstr(ins, "node-name");
    if (node && strcmp(node, "disk0") == 0) {
      found = 1;
      assert_string_equal(jstr(json_object_get(ins, "image"), "filename"), v->top);
      /* -blockdev: no legacy drive name, address by node-name. */
      assert_string_equal(jstr(d, "device"), "");
    }
  }
  assert_true(found);
  json_decref(devs);
  qmp_close(c);
}

static void test_errors(void **state)
{
  vm *v = *state;
  qmp_conn *c = must_open(v);
  vs_err err = {0};
  json_t *ret = (json_t *)1;
  assert_int_equal(qmp_execute(c, "no-such-command", NULL, 0, &ret, &err), VMSNAP_E_UNSUPPORTED);
  assert_null(ret);
  assert_string_equal(err.msg,
                      "QMP no-such-command: The command no-such-command has not been found");
  assert_string_equal(qmp_error_class(c), "CommandNotFound");
  memset(&err, 0, sizeof err);
  assert_int_equal(qmp_execute(c, "blockdev-snapshot-internal-sync",
                               json_pack("{s:s, s:s}", "device", "nodisk", "name", "s"), 0, NULL,
                               &err), VMSNAP_E_NOT_FOUND);
  assert_non_null(strstr(err.msg, "nodisk"));
  memset(&err, 0, sizeof err);
  assert_int_equal(qmp_execute(c, "query-status", json_pack("{s:i}", "bogus", 1), 0, NULL, &err),
                   VMSNAP_E_BACKEND);
  assert_non_null(strstr(err.msg, "QMP query-status: "));
  assert_non_null(strstr(err.msg, "bogus"));
  /* The connection stays usable after errors. */
  assert_status(c, "running");
  assert_string_equal(qmp_error_class(c), "");
  qmp_close(c);
}

static char *snapshot_list(const char *img)
{
  const char *const argv[] = {"qemu-img", "snapshot", "-l", "-U", img, NULL};
  return run_tool(argv);
}

static json_t *internal_snap(const char *node, const char *name)
{
  return json_pack("{s:s, s:{s:s, s:s}}", "type", "blockdev-snapshot-internal-sync", "data",
                   "device", node, "name", name);
}

/* Both disks at one instant, and all-or-nothing when one action fails. */
static void test_transaction_two_disks(void **state)
{
  vm *v = *state;
  qmp_conn *c = must_open(v);
  vs_err err = {0};
  exec_ok(c, "transaction",
          json_pack("{s:[o,o]}", "actions", internal_snap("disk0", "snapA"),
                    internal_snap("disk1", "snapA")), NULL);
  char *l0 = snapshot_list(v->top), *l1 = snapshot_list(v->d1);
  assert_non_null(l0);
  assert_non_null(l1);
  assert_non_null(strstr(l0, "snapA"));
  assert_non_null(strstr(l1, "snapA"));
  free(l0);
  free(l1);
  /* snapA exists on disk1: the whole transaction fails, disk0 gets nothing. */
  assert_int_equal(qmp_execute(c, "transaction",
                               json_pack("{s:[o,o]}", "actions", internal_snap("disk0", "snapB"),
                                         internal_snap("disk1", "snapA")), 0, NULL, &err),
                   VMSNAP_E_EXISTS);
  assert_non_null(strstr(err.msg, "already exists"));
  l0 = snapshot_list(v->top);
  assert_null(strstr(l0, "snapB"));
  free(l0);
  qmp_close(c);
}

/* ---- jobs ------------------------------------------------------------------ */

typedef struct prog {
  int calls;
  uint64_t done, total;
  int cancel_after; /* cancelled() turns true after this many progress calls */
  pid_t kill_pid;   /* SIGKILL this on the first progress call */
} prog;

static void on_progress(void *u, uint64_t done, uint64_t total)
{
  prog *p = u;
  assert_true(done >= p->done); /* never backwards */
  p->calls++;
  p->done = done;
  p->total = total;
  if (p->kill_pid > 0) kill(p->kill_pid, SIGKILL);
}

static int on_cancelled(void *u)
{
  prog *p = u;
  return p->cancel_after && p->calls >= p->cancel_after;
}

static void start_stream(qmp_conn *c, const char *id, json_int_t speed)
{
  exec_ok(c, "block-stream",
          json_pack("{s:s, s:s, s:I, s:b}", "job-id", id, "device", "disk0", "speed", speed,
                    "auto-dismiss", 0), NULL);
}

static void assert_no_jobs(qmp_conn *c)
{
  json_t *jobs;
  exec_ok(c, "query-jobs", NULL, &jobs);
  assert_int_equal(json_array_size(jobs), 0);
  json_decref(jobs);
}

static void test_wait_job_stream(void **state)
{
  vm *v = *state;
  qmp_conn *c = must_open(v);
  vs_err err = {0};
  prog p = {0};
  start_stream(c, "stream0", 64 * MiB); /* ~1 s: several polls */
  int rc = qmp_wait_job(c, "stream0", on_cancelled, &p, on_progress, &p, &err);
  assert_int_equal(rc, 0);
  assert_true(p.calls >= 3);
  assert_int_equal(p.total, 64 * MiB);
  assert_int_equal(p.done, p.total);
  assert_no_jobs(c); /* dismissed */
  /* The overlay no longer needs its backing file. */
  json_t *devs;
  assert_int_equal(qmp_query_block(c, &devs, &err), 0);
  json_t *img = json_object_get(json_object_get(json_array_get(devs, 0), "inserted"), "image");
  assert_null(json_object_get(img, "backing-image"));
  json_decref(devs);
  memset(&err, 0, sizeof err);
  assert_int_equal(qmp_wait_job(c, "stream0", NULL, NULL, NULL, NULL, &err), VMSNAP_E_NOT_FOUND);
  qmp_close(c);
}

static void test_wait_job_cancel(void **state)
{
  vm *v = *state;
  qmp_conn *c = must_open(v);
  vs_err err = {0};
  prog p = {.cancel_after = 3};
  start_stream(c, "stream1", 1 * MiB); /* 64 s if not cancelled */
  double t0 = secs();
  int rc = qmp_wait_job(c, "stream1", on_cancelled, &p, on_progress, &p, &err);
  assert_int_equal(rc, VMSNAP_E_CANCELLED);
  assert_true(secs() - t0 < 5.0);
  assert_true(p.done < p.total);
  assert_non_null(strstr(err.msg, "stream1"));
  assert_no_jobs(c);
  qmp_close(c);
}

/* The active layer's commit stops in "ready"; the caller pivots. */
static void test_commit_ready_complete(void **state)
{
  vm *v = *state;
  qmp_conn *c = must_open(v);
  vs_err err = {0};
  prog p = {0};
  exec_ok(c, "block-commit",
          json_pack("{s:s, s:s, s:b}", "job-id", "commit0", "device", "disk0", "auto-dismiss", 0),
          NULL);
  assert_int_equal(qmp_wait_job(c, "commit0", NULL, NULL, on_progress, &p, &err), QMP_JOB_READY);
  /* Still ready (and still running) until someone decides. */
  assert_int_equal(qmp_wait_job(c, "commit0", NULL, NULL, NULL, NULL, &err), QMP_JOB_READY);
  assert_int_equal(qmp_job_complete(c, "commit0", NULL, NULL, on_progress, &p, &err), 0);
  assert_true(p.calls >= 1);
  assert_no_jobs(c);
  json_t *devs;
  assert_int_equal(qmp_query_block(c, &devs, &err), 0);
  json_t *img = json_object_get(json_object_get(json_array_get(devs, 0), "inserted"), "image");
  assert_string_equal(jstr(img, "filename"), v->base); /* pivoted */
  json_decref(devs);
  qmp_close(c);
  vm_kill(v);
  const char *const argv[] = {"qemu-io", "-f", "qcow2", "-c", "read -P 0xa5 0 1M", v->base, NULL};
  char *out = run_tool(argv); /* exits non-zero on a mismatch too */
  assert_non_null(out);
  assert_null(strstr(out, "Pattern verification failed"));
  assert_non_null(strstr(out, "read 1048576/1048576 bytes"));
  free(out);
}

/* ---- QEMU gone or hung ---------------------------------------------------- */

static void test_qemu_killed_mid_wait(void **state)
{
  vm *v = *state;
  qmp_conn *c = must_open(v);
  vs_err err = {0};
  start_stream(c, "stream2", 1 * MiB);
  prog p = {.kill_pid = v->pid};
  double t0 = secs();
  int rc = qmp_wait_job(c, "stream2", NULL, NULL, on_progress, &p, &err);
  assert_int_equal(rc, VMSNAP_E_IO);
  assert_true(secs() - t0 < 3.0);
  if (!strstr(err.msg, "closed the connection")) fail_msg("message: %s", err.msg);
  /* Dead now: later calls fail at once. */
  memset(&err, 0, sizeof err);
  assert_int_equal(qmp_execute(c, "query-status", NULL, 0, NULL, &err), VMSNAP_E_IO);
  qmp_close(c);
  waitpid(v->pid, NULL, 0);
  v->pid = 0;
}

/* The peer is gone when we write: EPIPE, never SIGPIPE (default action is
 * on, so a SIGPIPE would kill this test). */
static void test_qemu_killed_between_calls(void **state)
{
  vm *v = *state;
  signal(SIGPIPE, SIG_DFL);
  qmp_conn *c = must_open(v);
  vs_err err = {0};
  vm_kill(v);
  double t0 = secs();
  assert_int_equal(qmp_execute(c, "query-status", NULL, 2000, NULL, &err), VMSNAP_E_IO);
  assert_true(secs() - t0 < 1.0);
  qmp_close(c);
}

/* SIGSTOP is asynchronous: wait until every QEMU thread is stopped, else
 * QEMU may still accept and greet the next client. */
static int task_stopped(const char *stat_path)
{
  char buf[512] = "";
  FILE *f = fopen(stat_path, "r");
  if (!f) return 1; /* the thread is gone */
  if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
  fclose(f);
  char *p = strrchr(buf, ')');
  return p && p[1] == ' ' && p[2] == 'T';
}

static void stop_qemu(pid_t pid)
{
  char dir[64], path[320];
  kill(pid, SIGSTOP);
  snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
  for (int i = 0; i < 500; i++) {
    int all = 1;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.') continue;
      snprintf(path, sizeof path, "%s/%.32s/stat", dir, e->d_name);
      all &= task_stopped(path);
    }
    if (d) closedir(d);
    if (d && all) return;
    usleep(2000);
  }
  fail_msg("QEMU %d did not stop", (int)pid);
}

/* A stopped process answers nothing: bounded waits, then late replies are
 * recognised by id and dropped. */
static void test_qemu_hung(void **state)
{
  vm *v = *state;
  qmp_conn *c = must_open(v), *c2 = NULL;
  vs_err err = {0};
  stop_qemu(v->pid);
  double t0 = secs();
  assert_int_equal(qmp_execute(c, "stop", NULL, 300, NULL, &err), VMSNAP_E_IO);
  assert_true(secs() - t0 < 1.5);
  assert_non_null(strstr(err.msg, "no reply to stop within 300 ms"));
  kill(v->pid, SIGCONT);
  assert_status(c, "paused"); /* stop's late reply came first and was skipped */
  qmp_close(c);
  usleep(100000); /* let QEMU see the hang-up and listen again */
  stop_qemu(v->pid);
  memset(&err, 0, sizeof err);
  t0 = secs();
  int rc = qmp_open(v->sock, 300, &c2, &err);
  if (rc != VMSNAP_E_BUSY) fail_msg("%d %s", rc, err.msg);
  assert_true(secs() - t0 < 1.5);
  kill(v->pid, SIGCONT);
}

/* ---- a fake monitor: split writes, batched writes, a big reply ------------- */

typedef struct fake {
  int lfd;
  int mode; /* 0: QMP with awkward framing, 1: an HMP greeting */
  size_t big;
} fake;

static void send_slowly(int fd, const char *s, size_t n, size_t chunk)
{
  for (size_t off = 0; off < n; off += chunk) {
    size_t k = n - off < chunk ? n - off : chunk;
    assert_int_equal(send(fd, s + off, k, MSG_NOSIGNAL), (ssize_t)k);
    if (chunk < 16) usleep(1000);
  }
}

/* The id of the next command line on fd. */
static char *read_cmd_id(int fd)
{
  char line[4096];
  size_t n = 0;
  while (n < sizeof line - 1 && read(fd, line + n, 1) == 1 && line[n] != '\n') n++;
  line[n] = '\0';
  json_t *m = json_loads(line, 0, NULL);
  char *id = m && jstr(m, "id") ? strdup(jstr(m, "id")) : NULL;
  json_decref(m);
  return id;
}

static void *fake_main(void *arg)
{
  fake *f = arg;
  int fd = accept(f->lfd, NULL, NULL);
  if (f->mode == 1) {
    const char *hmp = "QEMU 7.2.0 monitor - type 'help' for more information\r\n(qemu) ";
    send_slowly(fd, hmp, strlen(hmp), 1000);
    usleep(300000);
    close(fd);
    return NULL;
  }
  const char *greet = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 3, \"minor\": 1, "
                      "\"major\": 9}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n";
  send_slowly(fd, greet, strlen(greet), 1); /* one byte at a time */
  char *id = read_cmd_id(fd), buf[512];
  /* An event and the reply in one write, plus the start of the next event. */
  int n = snprintf(buf, sizeof buf,
                   "{\"event\": \"E1\", \"data\": {}}\r\n{\"return\": {}, \"id\": \"%s\"}\r\n"
                   "{\"event\": \"E2\", \"da", id);
  send_slowly(fd, buf, (size_t)n, sizeof buf);
  free(id);
  id = read_cmd_id(fd);
  /* The rest of E2, a stale reply, an empty line, then a big reply in odd chunks. */
  size_t cap = f->big + 512, len = 0;
  char *big = malloc(cap);
  len += (size_t)snprintf(big, cap, "ta\": {\"id\": \"j\"}}\n{\"return\": 1, \"id\": \"old\"}\n\r\n"
                                    "{\"id\": \"%s\", \"return\": \"", id);
  memset(big + len, 'x', f->big);
  len += f->big;
  len += (size_t)snprintf(big + len, cap - len, "\"}\r\n");
  send_slowly(fd, big, len, 7777);
  free(big);
  free(id);
  usleep(200000);
  close(fd);
  return NULL;
}

static void start_fake(fake *f, const char *path, pthread_t *th)
{
  struct sockaddr_un sa = unix_addr(path);
  f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(f->lfd, 1), 0);
  assert_int_equal(pthread_create(th, NULL, fake_main, f), 0);
}

static void test_framing_fake_monitor(void **state)
{
  char *dir = tu_tempdir(), path[300];
  snprintf(path, sizeof path, "%s/fake.sock", dir);
  fake f = {.mode = 0, .big = 5 * MiB};
  pthread_t th;
  start_fake(&f, path, &th);
  qmp_conn *c = NULL;
  vs_err err = {0};
  int maj, min, mic;
  assert_int_equal(qmp_open(path, 3000, &c, &err), 0);
  qmp_version(c, &maj, &min, &mic);
  assert_int_equal(maj * 10000 + min * 100 + mic, 90103);
  json_t *ret = NULL, *ev = NULL;
  assert_int_equal(qmp_execute(c, "query-big", NULL, 3000, &ret, &err), 0);
  assert_int_equal(json_string_length(ret), f.big);
  json_decref(ret);
  assert_int_equal(qmp_next_event_match(c, "E2", "id", "j", 0, &ev, &err), 0);
  assert_non_null(ev);
  json_decref(ev);
  assert_int_equal(qmp_next_event(c, NULL, 0, &ev, &err), 0);
  assert_string_equal(jstr(ev, "event"), "E1");
  json_decref(ev);
  /* The fake hangs up: the next call says so. */
  assert_int_equal(qmp_next_event(c, NULL, 2000, &ev, &err), VMSNAP_E_IO);
  qmp_close(c);
  pthread_join(th, NULL);
  close(f.lfd);
  tu_rmtree(dir);
  free(dir);
}

static void test_hmp_socket_rejected(void **state)
{
  char *dir = tu_tempdir(), path[300];
  snprintf(path, sizeof path, "%s/hmp.sock", dir);
  fake f = {.mode = 1};
  pthread_t th;
  start_fake(&f, path, &th);
  qmp_conn *c = NULL;
  vs_err err = {0};
  assert_int_equal(qmp_open(path, 2000, &c, &err), VMSNAP_E_INVALID);
  assert_non_null(strstr(err.msg, "not a QMP monitor"));
  pthread_join(th, NULL);
  close(f.lfd);
  tu_rmtree(dir);
  free(dir);
}


int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_missing_socket),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_framing_fake_monitor),
      cmocka_unit_test(test_hmp_socket_rejected),
      VM_TEST(test_greeting_capabilities_version),
      VM_TEST(test_second_client_busy),
      VM_TEST(test_status_and_events),
      VM_TEST(test_query_block),
      VM_TEST(test_errors),
      VM_TEST(test_transaction_two_disks),
      VM_TEST(test_wait_job_stream),
      VM_TEST(test_wait_job_cancel),
      VM_TEST(test_commit_ready_complete),
      VM_TEST(test_qemu_killed_mid_wait),
      VM_TEST(test_qemu_killed_between_calls),
      VM_TEST(test_qemu_hung),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
