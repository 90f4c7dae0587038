/* test_spawn_hosts.c — spawn_run in hostile hosts: a SIGCHLD handler that
 * reaps everything, SIGCHLD ignored, blocked signals, leaked fds, no
 * stdio, many threads, clone3 filtered. Only spawn.h's API is used. */
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

#include "spawn_run_helpers.h"

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
