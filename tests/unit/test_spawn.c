/* test_spawn.c — spawn_run: statuses, output, cancel, and hostile hosts
 * (a SIGCHLD handler that reaps everything, SIGCHLD ignored, blocked signals,
 * leaked fds, many threads). Only spawn.h's API is used. /bin/sh appears
 * here as a tool; the library itself never runs a shell. */
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
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"
#include "testutil.h"

#define SH(script) ((const char *const[]){"sh", "-c", (script), NULL})

static char errbuf[512];

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static vmsnap_spawn_opts opts_new(void)
{
  vmsnap_spawn_opts o = {.struct_size = sizeof o};
  return o;
}

/* Every run also checks that the calling thread's mask is left as it was. */
static int run(const char *const argv[], const vmsnap_spawn_opts *o, const spawn_ctl *ctl,
               vmsnap_spawn_result *r)
{
  sigset_t before, after;
  memset(r, 0, sizeof *r);
  r->struct_size = sizeof *r;
  pthread_sigmask(SIG_BLOCK, NULL, &before);
  int rc = spawn_run(argv, o, ctl, r, errbuf, sizeof errbuf);
  pthread_sigmask(SIG_BLOCK, NULL, &after);
  for (int sig = 1; sig < NSIG; sig++)
    assert_int_equal(sigismember(&before, sig), sigismember(&after, sig));
  return rc;
}

static int run_capture(const char *const argv[], vmsnap_spawn_result *r)
{
  vmsnap_spawn_opts o = opts_new();
  o.capture_stdout = 1;
  return run(argv, &o, NULL, r);
}

/* ---- cancel helpers ----------------------------------------------------- */

typedef struct cancel_after {
  int64_t at; /* cancel once now_ms() >= at */
  int calls;
} cancel_after;

static int cancel_cb(void *user)
{
  cancel_after *c = user;
  c->calls++;
  return now_ms() >= c->at;
}

static spawn_ctl ctl_cancel_after(cancel_after *c, int delay_ms, int grace_ms)
{
  c->at = now_ms() + delay_ms;
  c->calls = 0;
  spawn_ctl ctl = {.cancelled = cancel_cb, .cancel_user = c, .grace_ms = grace_ms};
  return ctl;
}

/* ---- statuses ----------------------------------------------------------- */

static void test_exit_zero(void **state)
{
  vmsnap_spawn_result r;
  assert_int_equal(run((const char *const[]){"true", NULL}, NULL, NULL, &r), 0);
  assert_int_equal(r.exit_status, 0);
  assert_int_equal(r.term_signal, 0);
  assert_null(r.out);
}

static void test_exit_nonzero(void **state)
{
  vmsnap_spawn_result r;
  assert_int_equal(run(SH("exit 7"), NULL, NULL, &r), 0);
  assert_int_equal(r.exit_status, 7);
  assert_int_equal(r.term_signal, 0);
}

static void test_killed_by_signal(void **state)
{
  vmsnap_spawn_result r;
  assert_int_equal(run(SH("kill -USR1 $$; sleep 5"), NULL, NULL, &r), 0);
  assert_int_equal(r.exit_status, -1);
  assert_int_equal(r.term_signal, SIGUSR1);
}

static void test_not_found(void **state)
{
  vmsnap_spawn_result r;
  const char *const argv[] = {"vmsnap-no-such-tool-4711", "x", NULL};
  assert_int_equal(run(argv, NULL, NULL, &r), VMSNAP_E_NOT_FOUND);
  assert_non_null(strstr(errbuf, "vmsnap-no-such-tool-4711: not found on PATH"));
  const char *const abs[] = {"/nonexistent/vmsnap-tool", NULL};
  assert_int_equal(run(abs, NULL, NULL, &r), VMSNAP_E_NOT_FOUND);
  assert_null(spawn_find_program("vmsnap-no-such-tool-4711"));
  char *sh = spawn_find_program("sh");
  assert_non_null(sh);
  assert_true(sh[0] == '/');
  assert_string_equal(strrchr(sh, '/'), "/sh");
  free(sh);
}

/* A temporary directory with a fake tool and a file that cannot run. */
static void write_file(const char *path, const char *text, mode_t mode)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  assert_int_equal(chmod(path, mode), 0);
}

static void test_path_lookup_and_exec_error(void **state)
{
  char dir[] = "/tmp/vmsnap-spawn-XXXXXX", tool[64], bad[64], noexec[64], path[4096];
  const char *env_path = getenv("PATH");
  char *old = strdup(env_path ? env_path : "/usr/bin:/bin");
  vmsnap_spawn_result r;
  assert_non_null(mkdtemp(dir));
  snprintf(tool, sizeof tool, "%s/vmsnap-fake", dir);
  snprintf(bad, sizeof bad, "%s/vmsnap-bad", dir);
  snprintf(noexec, sizeof noexec, "%s/vmsnap-noexec", dir);
  write_file(tool, "#!/bin/sh\necho fake \"$1\"\n", 0755);
  write_file(bad, "this is not a program\n", 0755); /* execve: ENOEXEC */
  write_file(noexec, "#!/bin/sh\n", 0644);
  /* Empty and relative entries must be skipped, never mean ".". */
  snprintf(path, sizeof path, ":.:relative:%s:%s", dir, old);
  setenv("PATH", path, 1);

  assert_int_equal(run_capture((const char *const[]){"vmsnap-fake", "x", NULL}, &r), 0);
  assert_string_equal(r.out, "fake x\n");
  free(r.out);
  assert_int_equal(run((const char *const[]){"vmsnap-noexec", NULL}, NULL, NULL, &r),
                   VMSNAP_E_NOT_FOUND);
  assert_int_equal(run((const char *const[]){"vmsnap-bad", NULL}, NULL, NULL, &r),
                   VMSNAP_E_BACKEND);
  assert_non_null(strstr(errbuf, "cannot execute"));
  assert_int_equal(chdir(dir), 0);
  setenv("PATH", ":.:relative", 1);
  assert_null(spawn_find_program("vmsnap-fake"));
  assert_int_equal(chdir("/"), 0);

  setenv("PATH", old, 1);
  free(old);
  unlink(tool), unlink(bad), unlink(noexec), rmdir(dir);
}

/* ---- output ------------------------------------------------------------- */

static void test_capture_stdout(void **state)
{
  vmsnap_spawn_result r;
  assert_int_equal(run_capture(SH("printf 'hello\\nworld'; echo to-stderr >&2"), &r), 0);
  assert_string_equal(r.out, "hello\nworld");
  free(r.out);
  assert_int_equal(run_capture(SH("true"), &r), 0);
  assert_string_equal(r.out, "");
  free(r.out);
  assert_int_equal(run(SH("echo not kept"), NULL, NULL, &r), 0); /* no capture */
  assert_null(r.out);
}

static void test_capture_large(void **state)
{
  enum { N = 300000 };
  vmsnap_spawn_result r;
  size_t size = (size_t)8 * N, len = 0;
  char *want = malloc(size);
  assert_non_null(want);
  for (int i = 1; i <= N; i++)
    len += (size_t)snprintf(want + len, size - len, "%d\n", i);
  assert_true(len > (size_t)1024 * 1024);
  assert_int_equal(run_capture((const char *const[]){"seq", "1", "300000", NULL}, &r), 0);
  assert_int_equal(r.exit_status, 0);
  assert_non_null(r.out);
  assert_int_equal(strlen(r.out), len);
  assert_memory_equal(r.out, want, len);
  free(r.out);
  free(want);
}

static void test_stderr_tail(void **state)
{
  vmsnap_spawn_result r;
  const char *script = "i=0; while [ $i -lt 200 ]; do echo \"  error line $i  \" >&2; "
                       "i=$((i+1)); done; echo out; exit 3";
  assert_int_equal(run(SH(script), NULL, NULL, &r), 0);
  assert_int_equal(r.exit_status, 3);
  size_t len = strlen(r.err_tail);
  assert_true(len > 500 && len < sizeof r.err_tail);
  /* Whole, trimmed lines, the newest last, no trailing newline. */
  assert_int_equal(strncmp(r.err_tail, "error line ", 11), 0);
  assert_string_equal(r.err_tail + len - 14, "error line 199");
  assert_null(strstr(r.err_tail, "  "));
  assert_non_null(strstr(r.err_tail, "error line 198\nerror line 199"));
  assert_null(strstr(r.err_tail, "out"));

  /* One line longer than the tail keeps its end. */
  assert_int_equal(run(SH("head -c 5000 /dev/zero | tr '\\0' y >&2; printf END >&2"), NULL,
                       NULL, &r),
                   0);
  assert_int_equal(strlen(r.err_tail), sizeof r.err_tail - 1);
  assert_string_equal(r.err_tail + strlen(r.err_tail) - 4, "yEND");
}

typedef struct lines_seen {
  char *line[32];
  int n;
  uint64_t done[32];
  int n_progress;
  int64_t max_len;
} lines_seen;

/* Extractor in qemu-img -p style: "    (12.50/100%)". */
static int line_cb(void *user, const char *line, uint64_t *done, uint64_t *total)
{
  lines_seen *s = user;
  double pct;
  if ((int64_t)strlen(line) > s->max_len)
    s->max_len = (int64_t)strlen(line);
  if (s->n < 32)
    s->line[s->n++] = strdup(line);
  const char *p = strchr(line, '(');
  if (!p || sscanf(p, "(%lf/100%%)", &pct) != 1)
    return 0;
  *done = (uint64_t)(pct * 100), *total = 10000;
  return 1;
}

static void progress_cb(void *user, uint64_t done, uint64_t total)
{
  lines_seen *s = user;
  assert_int_equal(total, 10000);
  if (s->n_progress < 32)
    s->done[s->n_progress++] = done;
}

static bool seen(const lines_seen *s, const char *line)
{
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->line[i], line) == 0)
      return true;
  return false;
}

static void lines_free(lines_seen *s)
{
  for (int i = 0; i < s->n; i++)
    free(s->line[i]);
}

static void test_lines_and_progress(void **state)
{
  lines_seen s = {.n = 0};
  vmsnap_spawn_opts o = opts_new();
  spawn_ctl ctl = {.progress = progress_cb, .progress_user = &s};
  vmsnap_spawn_result r;
  o.line = line_cb, o.line_user = &s;
  const char *script = "printf '    (0.00/100%%)\\r    (12.50/100%%)\\r    (100.00/100%%)\\r\\n';"
                       "echo 'on stderr' >&2; printf 'a\\r\\rb\\n\\nno newline'";
  assert_int_equal(run(SH(script), &o, &ctl, &r), 0);
  assert_int_equal(s.n_progress, 3);
  assert_int_equal(s.done[0], 0);
  assert_int_equal(s.done[1], 1250);
  assert_int_equal(s.done[2], 10000);
  assert_int_equal(s.n, 7); /* empty lines are not reported */
  assert_true(seen(&s, "    (12.50/100%)"));
  assert_true(seen(&s, "on stderr"));
  assert_true(seen(&s, "a") && seen(&s, "b") && seen(&s, "no newline"));
  lines_free(&s);
}

static void test_long_line_is_cut(void **state)
{
  lines_seen s = {.n = 0};
  vmsnap_spawn_opts o = opts_new();
  vmsnap_spawn_result r;
  o.line = line_cb, o.line_user = &s, o.capture_stdout = 1;
  assert_int_equal(run(SH("head -c 300000 /dev/zero | tr '\\0' x; echo; echo after"), &o, NULL,
                       &r),
                   0);
  assert_int_equal(s.n, 2);
  assert_true(s.max_len >= 4096 && s.max_len <= (int64_t)64 * 1024);
  assert_string_equal(s.line[1], "after");
  assert_int_equal(strlen(r.out), 300000 + 1 + 6); /* capture is not cut */
  free(r.out);
  lines_free(&s);
}

static void test_env_add(void **state)
{
  vmsnap_spawn_opts o = opts_new();
  vmsnap_spawn_result r;
  const char *const env[] = {"VMSNAP_T_A=hello world", "HOME=/x-home", NULL};
  const char *const bad_env[] = {"NO_EQUALS_SIGN", NULL};
  setenv("VMSNAP_T_PARENT", "p", 1);
  o.capture_stdout = 1, o.env_add = env;
  assert_int_equal(run(SH("echo \"$VMSNAP_T_A|$HOME|$VMSNAP_T_PARENT\"; env | grep -c '^HOME='"),
                       &o, NULL, &r),
                   0);
  assert_string_equal(r.out, "hello world|/x-home|p\n1\n");
  free(r.out);
  o.env_add = bad_env;
  assert_int_equal(run(SH("true"), &o, NULL, &r), VMSNAP_E_INVALID);
  unsetenv("VMSNAP_T_PARENT");
}

/* ---- cancel ------------------------------------------------------------- */

static void test_cancel_sleep(void **state)
{
  cancel_after c;
  spawn_ctl ctl = ctl_cancel_after(&c, 100, 0);
  vmsnap_spawn_result r;
  int64_t t0 = now_ms();
  assert_int_equal(run((const char *const[]){"sleep", "30", NULL}, NULL, &ctl, &r),
                   VMSNAP_E_CANCELLED);
  assert_true(now_ms() - t0 < 2000);
  assert_true(c.calls >= 2); /* polled while it ran */
  assert_int_equal(r.term_signal, SIGTERM);
}

static void test_cancel_sigkill_after_grace(void **state)
{
  cancel_after c;
  spawn_ctl ctl = ctl_cancel_after(&c, 100, 500);
  vmsnap_spawn_result r;
  int64_t t0 = now_ms();
  assert_int_equal(run(SH("trap '' TERM; sleep 30; echo survived"), NULL, &ctl, &r),
                   VMSNAP_E_CANCELLED);
  int64_t took = now_ms() - t0;
  assert_true(took >= 550 && took < 3000);
  assert_int_equal(r.term_signal, SIGKILL);
}

static bool gone_or_zombie(pid_t pid)
{
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return true;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  buf[n > 0 ? n : 0] = '\0';
  char *p = strrchr(buf, ')');
  return !p || p[2] == 'Z' || p[2] == 'X';
}

/* The cancel reaches what the tool started, and a background child that
 * keeps the pipes open does not hold spawn_run. */
static void test_cancel_reaches_tool_children(void **state)
{
  cancel_after c;
  spawn_ctl ctl = ctl_cancel_after(&c, 300, 0);
  vmsnap_spawn_result r;
  vmsnap_spawn_opts o = opts_new();
  o.capture_stdout = 1;
  assert_int_equal(run(SH("sleep 30 & echo $!; wait"), &o, &ctl, &r), VMSNAP_E_CANCELLED);
  pid_t bg = (pid_t)atoi(r.out);
  free(r.out);
  assert_true(bg > 0);
  int64_t t0 = now_ms();
  while (!gone_or_zombie(bg) && now_ms() - t0 < 2000)
    usleep(10000);
  assert_true(gone_or_zombie(bg));

  t0 = now_ms();
  assert_int_equal(run(SH("sleep 3 & echo done"), &o, NULL, &r), 0);
  assert_true(now_ms() - t0 < 1500);
  assert_string_equal(r.out, "done\n");
  free(r.out);
}

/* Someone kills the intermediate (its pid is the tool's $PPID): the tool
 * must die with it, and spawn_run must say the status is unknown. */
static int kill_parent_cb(void *user, const char *line, uint64_t *done, uint64_t *total)
{
  pid_t *tool = user;
  int ppid = 0, pid = 0;
  if (sscanf(line, "%d %d", &ppid, &pid) == 2 && ppid > 1) {
    *tool = (pid_t)pid;
    kill((pid_t)ppid, SIGKILL);
  }
  return 0;
}

static void test_helper_killed(void **state)
{
  pid_t tool = 0;
  vmsnap_spawn_opts o = opts_new();
  vmsnap_spawn_result r;
  o.line = kill_parent_cb, o.line_user = &tool;
  int64_t t0 = now_ms();
  assert_int_equal(run(SH("echo $PPID $$; exec sleep 30"), &o, NULL, &r), VMSNAP_E_BACKEND);
  assert_true(now_ms() - t0 < 2000);
  assert_non_null(strstr(errbuf, "signal 9"));
  assert_true(tool > 0);
  while (!gone_or_zombie(tool) && now_ms() - t0 < 2000)
    usleep(10000);
  assert_true(gone_or_zombie(tool));
}

/* ---- hostile hosts ------------------------------------------------------ */

static struct sigaction saved_chld;
static atomic_int reaped, handler_calls;
static atomic_bool reaper_stop;
static pthread_t reaper;

static void reap_all_handler(int sig)
{
  int e = errno;
  atomic_fetch_add(&handler_calls, 1);
  while (waitpid(-1, NULL, WNOHANG) > 0)
    atomic_fetch_add(&reaped, 1);
  errno = e;
}

/* Even more hostile than a handler: reaps every kind of child, __WALL. */
static void *reaper_main(void *arg)
{
  while (!atomic_load(&reaper_stop)) {
    if (waitpid(-1, NULL, WNOHANG | __WALL) > 0)
      atomic_fetch_add(&reaped, 1);
    else
      usleep(500);
  }
  return NULL;
}

static int setup_reaping_host(void **state)
{
  struct sigaction sa = {.sa_handler = reap_all_handler, .sa_flags = SA_RESTART};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGCHLD, &sa, &saved_chld);
  atomic_store(&reaped, 0);
  atomic_store(&handler_calls, 0);
  atomic_store(&reaper_stop, false);
  return pthread_create(&reaper, NULL, reaper_main, NULL);
}

static int teardown_reaping_host(void **state)
{
  atomic_store(&reaper_stop, true);
  pthread_join(reaper, NULL);
  sigaction(SIGCHLD, &saved_chld, NULL);
  return 0;
}

static void check_statuses(void)
{
  vmsnap_spawn_result r;
  for (int i = 0; i < 10; i++) {
    assert_int_equal(run(SH("exit 7"), NULL, NULL, &r), 0);
    assert_int_equal(r.exit_status, 7);
    assert_int_equal(run(SH("kill -USR1 $$"), NULL, NULL, &r), 0);
    assert_int_equal(r.term_signal, SIGUSR1);
    assert_int_equal(run_capture(SH("echo hi"), &r), 0);
    assert_int_equal(r.exit_status, 0);
    assert_string_equal(r.out, "hi\n");
    free(r.out);
  }
}

static void test_host_reaps_every_child(void **state)
{
  pid_t pid = fork(); /* prove the host really reaps */
  if (pid == 0)
    _exit(0);
  assert_true(pid > 0);
  for (int i = 0; i < 200 && atomic_load(&reaped) == 0; i++)
    usleep(10000);
  assert_true(atomic_load(&reaped) > 0);
  usleep(20000);
  int calls = atomic_load(&handler_calls);
  check_statuses();
  /* Our children send no SIGCHLD: the host's handler never sees them. */
  usleep(20000);
  assert_int_equal(atomic_load(&handler_calls), calls);
}

static int setup_sigchld_ignored(void **state)
{
  struct sigaction sa = {.sa_handler = SIG_IGN};
  sigemptyset(&sa.sa_mask);
  return sigaction(SIGCHLD, &sa, &saved_chld);
}

static int teardown_sigchld(void **state)
{
  return sigaction(SIGCHLD, &saved_chld, NULL);
}

static void test_host_ignores_sigchld(void **state)
{
  check_statuses();
}

/* Host: SIGTERM and SIGINT blocked in the calling thread, SIGUSR1 handled,
 * SIGPIPE ignored. The tool must start clean; the host must stay as is. */
static sigset_t saved_mask;
static struct sigaction saved_usr1, saved_pipe;

static void noop_handler(int sig) {}

static int setup_blocked_host(void **state)
{
  sigset_t block;
  struct sigaction usr1 = {.sa_handler = noop_handler}, ign = {.sa_handler = SIG_IGN};
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigemptyset(&usr1.sa_mask);
  sigemptyset(&ign.sa_mask);
  sigaction(SIGUSR1, &usr1, &saved_usr1);
  sigaction(SIGPIPE, &ign, &saved_pipe);
  return pthread_sigmask(SIG_BLOCK, &block, &saved_mask);
}

static int teardown_blocked_host(void **state)
{
  sigaction(SIGUSR1, &saved_usr1, NULL);
  sigaction(SIGPIPE, &saved_pipe, NULL);
  return pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
}

typedef struct sig_snapshot {
  sigset_t mask;
  struct sigaction act[NSIG];
} sig_snapshot;

static void sig_snap(sig_snapshot *s)
{
  memset(s, 0, sizeof *s);
  pthread_sigmask(SIG_BLOCK, NULL, &s->mask);
  for (int sig = 1; sig < NSIG; sig++)
    sigaction(sig, NULL, &s->act[sig]);
}

static void sig_assert_same(const sig_snapshot *a, const sig_snapshot *b)
{
  for (int sig = 1; sig < NSIG; sig++) {
    assert_int_equal(sigismember(&a->mask, sig), sigismember(&b->mask, sig));
    assert_ptr_equal(a->act[sig].sa_handler, b->act[sig].sa_handler);
    assert_int_equal(a->act[sig].sa_flags, b->act[sig].sa_flags);
  }
}

static void test_host_blocks_signals(void **state)
{
  sig_snapshot before, after;
  vmsnap_spawn_result r;
  cancel_after c;
  sig_snap(&before);

  assert_int_equal(run_capture(SH("grep -E '^Sig(Blk|Ign):' /proc/self/status"), &r), 0);
  assert_string_equal(r.out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
  free(r.out);

  /* A long grace: only a SIGTERM that reaches the tool ends this fast. */
  spawn_ctl ctl = ctl_cancel_after(&c, 100, 10000);
  int64_t t0 = now_ms();
  assert_int_equal(run((const char *const[]){"sleep", "30", NULL}, NULL, &ctl, &r),
                   VMSNAP_E_CANCELLED);
  assert_true(now_ms() - t0 < 2000);
  assert_int_equal(r.term_signal, SIGTERM);

  sig_snap(&after);
  sig_assert_same(&before, &after);
  assert_true(sigismember(&after.mask, SIGTERM));
  assert_false(sigismember(&after.mask, SIGHUP));
  assert_ptr_equal(after.act[SIGUSR1].sa_handler, noop_handler);
}

static int count_fds(void)
{
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d);
  for (struct dirent *e; (e = readdir(d));)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static void test_host_leaks_fds(void **state)
{
  vmsnap_spawn_result r;
  int fds_before = count_fds();
  int leaked = open("/dev/null", O_RDONLY); /* no O_CLOEXEC, on purpose */
  assert_true(leaked >= 0);
  assert_int_equal(dup2(leaked, 77), 77);
  assert_int_equal(dup2(leaked, 900), 900);

  assert_int_equal(run_capture((const char *const[]){"ls", "/proc/self/fd", NULL}, &r), 0);
  /* 0..2, plus the directory ls reads (3). */
  int n = 0, max = -1;
  for (char *tok = strtok(r.out, "\n"); tok; tok = strtok(NULL, "\n"), n++)
    if (atoi(tok) > max)
      max = atoi(tok);
  free(r.out);
  assert_int_equal(n, 4);
  assert_int_equal(max, 3);

  close(leaked), close(77), close(900);
  /* No fd of ours is left behind, whatever the outcome. */
  cancel_after c;
  spawn_ctl ctl = ctl_cancel_after(&c, 50, 0);
  run(SH("exit 1"), NULL, NULL, &r);
  run((const char *const[]){"vmsnap-no-such-tool-4711", NULL}, NULL, NULL, &r);
  run((const char *const[]){"sleep", "30", NULL}, NULL, &ctl, &r);
  run_capture(SH("echo x; echo y >&2"), &r);
  free(r.out);
  assert_int_equal(count_fds(), fds_before);
}

/* A daemon may run with 0..2 closed: our own pipes then land there, and
 * the tool's dup2 onto 0..2 must not clobber them. */
static void test_host_without_stdio(void **state)
{
  vmsnap_spawn_opts o = opts_new();
  vmsnap_spawn_result r = {.struct_size = sizeof r};
  int saved[3], rc;
  o.capture_stdout = 1;
  for (int i = 0; i < 3; i++)
    saved[i] = fcntl(i, F_DUPFD_CLOEXEC, 10);
  close(0), close(1), close(2);
  rc = spawn_run(SH("echo hi; echo oops >&2; read x; echo \"[$x]\"; exit 7"), &o, NULL, &r,
                 errbuf, sizeof errbuf);
  for (int i = 0; i < 3; i++)
    dup2(saved[i], i), close(saved[i]);
  assert_int_equal(rc, 0);
  assert_int_equal(r.exit_status, 7);
  assert_string_equal(r.out, "hi\n[]\n"); /* stdin is /dev/null */
  assert_string_equal(r.err_tail, "oops");
  free(r.out);
}

typedef struct thread_arg {
  int id;
  int failures;
} thread_arg;

static void *spawn_thread(void *p)
{
  thread_arg *a = p;
  vmsnap_spawn_opts o = {.struct_size = sizeof o, .capture_stdout = 1};
  for (int j = 0; j < 15; j++) {
    char id[32], code[16], want[40], err[256];
    vmsnap_spawn_result r = {.struct_size = sizeof r};
    snprintf(id, sizeof id, "t%d-%d", a->id, j);
    snprintf(code, sizeof code, "%d", (a->id * 15 + j) % 200 + 1);
    snprintf(want, sizeof want, "%s\n", id);
    const char *const argv[] = {"sh", "-c", "echo \"$1\"; exit \"$2\"", "sh", id, code, NULL};
    int rc = spawn_run(argv, &o, NULL, &r, err, sizeof err);
    if (rc != 0 || r.exit_status != atoi(code) || !r.out || strcmp(r.out, want) != 0)
      a->failures++;
    free(r.out);
  }
  return NULL;
}

static void test_threads(void **state)
{
  pthread_t t[8];
  thread_arg a[8];
  for (int i = 0; i < 8; i++) {
    a[i] = (thread_arg){.id = i};
    assert_int_equal(pthread_create(&t[i], NULL, spawn_thread, &a[i]), 0);
  }
  for (int i = 0; i < 8; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(a[i].failures, 0);
  }
}

/* Containers with an old seccomp profile make clone3 fail with ENOSYS;
 * spawn falls back to clone(). Checked in a forked child under a filter. */
static void test_clone3_filtered(void **state)
{
#if defined(__x86_64__)
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    vmsnap_spawn_result r = {.struct_size = sizeof r};
    char err[256];
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
      _exit(2);
    if (syscall(__NR_clone3, NULL, 0) >= 0 || errno != ENOSYS)
      _exit(3); /* the filter is not active */
    int rc = spawn_run(SH("exit 5"), NULL, NULL, &r, err, sizeof err);
    _exit(rc == 0 && r.exit_status == 5 ? 0 : 1);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
#else
  skip();
#endif
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exit_zero),
      cmocka_unit_test(test_exit_nonzero),
      cmocka_unit_test(test_killed_by_signal),
      cmocka_unit_test(test_not_found),
      cmocka_unit_test(test_path_lookup_and_exec_error),
      cmocka_unit_test(test_capture_stdout),
      cmocka_unit_test(test_capture_large),
      cmocka_unit_test(test_stderr_tail),
      cmocka_unit_test(test_lines_and_progress),
      cmocka_unit_test(test_long_line_is_cut),
      cmocka_unit_test(test_env_add),
      cmocka_unit_test(test_cancel_sleep),
      cmocka_unit_test(test_cancel_sigkill_after_grace),
      cmocka_unit_test(test_cancel_reaches_tool_children),
      cmocka_unit_test(test_helper_killed),
      cmocka_unit_test_setup_teardown(test_host_reaps_every_child, setup_reaping_host,
                                      teardown_reaping_host),
      cmocka_unit_test_setup_teardown(test_host_ignores_sigchld, setup_sigchld_ignored,
                                      teardown_sigchld),
      cmocka_unit_test_setup_teardown(test_host_blocks_signals, setup_blocked_host,
                                      teardown_blocked_host),
      cmocka_unit_test(test_host_leaks_fds),
      cmocka_unit_test(test_host_without_stdio),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_clone3_filtered),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
